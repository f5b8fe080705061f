package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/files"
)

// Applying the config: each function takes the root it works under ("/"
// on a node, a temporary directory in tests).

// SysctlPath maps a sysctl name to its file under /proc/sys: dots separate
// levels unless the name already uses slashes (needed for interface names
// with dots, "net/ipv4/conf/eth0.10/forwarding").
func SysctlPath(root, key string) string {
	k := key
	if !strings.Contains(k, "/") {
		k = strings.ReplaceAll(k, ".", "/")
	}
	return filepath.Join(root, "proc", "sys", filepath.Clean("/"+k))
}

// ApplySysctls writes every sysctl, in name order, and returns one error
// naming each that failed.
func ApplySysctls(root string, sysctls map[string]string) error {
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if err := os.WriteFile(SysctlPath(root, k), []byte(sysctls[k]+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("sysctl %s = %q: %w", k, sysctls[k], err))
		}
	}
	return errors.Join(errs...)
}

// WriteFiles writes each write_files entry atomically (a temporary file in
// the same directory, renamed over the target) with its mode and owner.
// Names of users and groups are looked up in root's /etc/passwd and
// /etc/group. It goes on after a failure and returns every error.
func WriteFiles(root string, files []config.WriteFile) error {
	var errs []error
	for _, f := range files {
		if err := writeFile(root, f); err != nil {
			errs = append(errs, fmt.Errorf("write_files %s: %w", f.Path, err))
		}
	}
	return errors.Join(errs...)
}

func writeFile(root string, f config.WriteFile) error {
	data, err := f.Decode()
	if err != nil {
		return err
	}
	mode, err := f.Mode()
	if err != nil {
		return err
	}
	uid, gid, err := owner(root, f.Owner)
	if err != nil {
		return err
	}
	target := filepath.Join(root, filepath.Clean("/"+f.Path))
	if f.Append {
		old, err := os.ReadFile(target)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		data = append(old, data...)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	return files.WriteAtomic(target, data, mode, uid, gid)
}

// owner resolves "user:group", "user", numeric ids or names, to ids.
func owner(root, spec string) (int, int, error) {
	if spec == "" {
		spec = config.DefaultOwner
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, ugid, err := lookup(filepath.Join(root, "etc", "passwd"), user)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %q: %w", spec, err)
	}
	gid := ugid
	if hasGroup {
		if gid, _, err = lookup(filepath.Join(root, "etc", "group"), group); err != nil {
			return 0, 0, fmt.Errorf("owner %q: %w", spec, err)
		}
	}
	return uid, gid, nil
}

// lookup finds name (or a number) in a passwd- or group-style file and
// returns its id and, for passwd, its primary group.
func lookup(file, name string) (id, gid int, err error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, n, nil
	}
	if name == "root" {
		return 0, 0, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: %w", name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		id, err := strconv.Atoi(fields[2])
		if err != nil {
			return 0, 0, fmt.Errorf("%s: bad id for %q", file, name)
		}
		gid = id
		if len(fields) > 3 {
			if g, err := strconv.Atoi(fields[3]); err == nil && strings.HasSuffix(file, "passwd") {
				gid = g
			}
		}
		return id, gid, nil
	}
	return 0, 0, fmt.Errorf("%q is not in %s; use a numeric id or add the account to the image", name, file)
}

// WriteHostname writes /etc/hostname under root.
func WriteHostname(root, name string) error {
	return writeFile(root, config.WriteFile{Path: "/etc/hostname", Content: name + "\n", Permissions: "0644"})
}
