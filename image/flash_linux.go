package image

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// blockNames returns what names the block device st and its partitions:
// "MAJ:MIN" and "/dev/NAME" of each.
func blockNames(st os.FileInfo) (map[string]bool, error) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("%s: no device number", st.Name())
	}
	devNum := fmt.Sprintf("%d:%d", unix.Major(sys.Rdev), unix.Minor(sys.Rdev))
	dir, err := filepath.EvalSymlinks("/sys/dev/block/" + devNum)
	if err != nil {
		return nil, fmt.Errorf("block device %s is not in /sys: %w", devNum, err)
	}
	names := map[string]bool{}
	add := func(d string) {
		names["/dev/"+filepath.Base(d)] = true
		if b, err := os.ReadFile(filepath.Join(d, "dev")); err == nil {
			names[strings.TrimSpace(string(b))] = true
		}
	}
	add(dir)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err == nil {
			add(filepath.Join(dir, e.Name()))
		}
	}
	return names, nil
}

// usedBy returns the first line of the table in path (/proc/self/mountinfo,
// /proc/swaps) that names one of names, shortened, or "".
func usedBy(path string, names map[string]bool) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			// mountinfo: field 2 is MAJ:MIN, the source follows " - TYPE";
			// swaps: field 0 is the device.
			if names[fl] && (i == 0 || i == 2 || (i > 2 && fields[i-2] == "-")) {
				if len(fields) > 4 && path != "/proc/swaps" {
					return "on " + fields[4]
				}
				return fields[0]
			}
		}
	}
	return ""
}
