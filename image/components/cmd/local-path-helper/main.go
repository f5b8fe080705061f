// Command local-path-helper makes and removes the directories of the
// local-path provisioner's volumes. The provisioner runs it in a helper
// pod on the volume's node, as config.json's setupCommand and
// teardownCommand, in place of upstream's busybox shell scripts, with
// upstream's arguments:
//
//	local-path-helper -p DIR -s BYTES -m Filesystem|Block -a create|delete
//	local-path-helper --version
//
// create makes DIR, mode 0777 so the workload's user may write it, in its
// parent (the helper pod's hostPath mount, which must exist); delete
// removes DIR and everything in it. Both succeed when there is nothing
// to do, as the provisioner retries. The size and the volume mode are
// accepted and not used, as k3s's scripts do: a volume is a directory.
// It ships in the local-path provisioner's image, static, so that image
// needs no shell.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// version is set with -ldflags "-X main.version=...": the provisioner
// release whose arguments it takes.
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = "usage: local-path-helper -p DIR -s BYTES -m Filesystem|Block -a create|delete"

// request is one call of the provisioner.
type request struct {
	dir, action string
}

// parse reads the provisioner's arguments: each flag once, each with a
// value.
func parse(args []string) (request, error) {
	var r request
	seen := map[string]bool{}
	if len(args)%2 != 0 {
		return r, errors.New("every flag takes a value")
	}
	for i := 0; i < len(args); i += 2 {
		flag, val := args[i], args[i+1]
		if seen[flag] {
			return r, fmt.Errorf("%s given twice", flag)
		}
		seen[flag] = true
		switch flag {
		case "-p":
			r.dir = val
		case "-a":
			r.action = val
		case "-s", "-m":
			// The size and the volume mode: not used.
		default:
			return r, fmt.Errorf("unknown flag %q", flag)
		}
	}
	switch {
	case r.dir == "":
		return r, errors.New("no volume directory (-p)")
	case !filepath.IsAbs(r.dir) || filepath.Clean(r.dir) != r.dir || r.dir == "/":
		return r, fmt.Errorf("-p %q is not an absolute, clean directory below /", r.dir)
	case r.action != "create" && r.action != "delete":
		return r, fmt.Errorf("-a %q is not create or delete", r.action)
	}
	return r, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-v") {
		fmt.Fprintf(stdout, "local-path-helper (cairn) version %s\n", version)
		return 0
	}
	r, err := parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "local-path-helper: %v\n%s\n", err, usage)
		return 2
	}
	if r.action == "create" {
		err = create(r.dir, stdout)
	} else {
		err = remove(r.dir, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "local-path-helper: %v\n", err)
		return 1
	}
	return 0
}

// create makes dir, mode 0777, in its existing parent.
func create(dir string, stdout io.Writer) error {
	parent := filepath.Dir(dir)
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return fmt.Errorf("creating %s: its parent %s is not a directory (%v); the helper pod mounts it", dir, parent, err)
	}
	err := os.Mkdir(dir, 0o777)
	if errors.Is(err, fs.ErrExist) {
		st, lerr := os.Lstat(dir)
		if lerr != nil || !st.IsDir() {
			return fmt.Errorf("creating %s: something other than a directory is there", dir)
		}
	} else if err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	// Mkdir's mode went through the umask.
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "created %s\n", dir)
	return nil
}

// remove deletes dir and what it holds; a link there is removed, not
// followed.
func remove(dir string, stdout io.Writer) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "%s is already gone\n", dir)
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "removed %s\n", dir)
	return nil
}
