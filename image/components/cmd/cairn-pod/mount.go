package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// mount and umount are the subset of util-linux's mount(8) and umount(8)
// the kubelet runs (through k8s.io/mount-utils) for its volumes: tmpfs for
// secrets and projected tokens, bind mounts and their read-only remounts,
// propagation changes. The appliance has no util-linux.
func mount() int {
	m, err := parseMount(os.Args[1:])
	if err == nil {
		err = m.run()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mount: %v\n", err)
		return 32 // mount(8)'s "mount failure"
	}
	return 0
}

func umount() int {
	flags := 0
	var targets []string
	for _, a := range os.Args[1:] {
		switch a {
		case "-l", "--lazy":
			flags |= unix.MNT_DETACH
		case "-f", "--force":
			flags |= unix.MNT_FORCE
		case "-n", "--no-canonicalize", "-c", "-i":
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(os.Stderr, "umount: option %s is not supported\n", a)
				return 1
			}
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		fmt.Fprintln(os.Stderr, "usage: umount [-l] [-f] TARGET...")
		return 1
	}
	status := 0
	for _, t := range targets {
		if err := unix.Unmount(t, flags); err != nil {
			fmt.Fprintf(os.Stderr, "umount: %s: %v\n", t, err)
			status = 32
		}
	}
	return status
}

// mountCall is one mount(8) invocation as mount(2) calls.
type mountCall struct {
	source, target, fstype string
	flags                  uintptr
	data                   []string
	// propagation, when set, is applied by a second call (MS_SHARED,
	// MS_PRIVATE, ... with MS_REC for the r- forms).
	propagation uintptr
}

var mountFlags = map[string]struct {
	set   bool
	value uintptr
}{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"sync": {true, unix.MS_SYNCHRONOUS}, "async": {false, unix.MS_SYNCHRONOUS},
	"remount": {true, unix.MS_REMOUNT}, "bind": {true, unix.MS_BIND},
	"rbind":   {true, unix.MS_BIND | unix.MS_REC},
	"noatime": {true, unix.MS_NOATIME}, "atime": {false, unix.MS_NOATIME},
	"nodiratime": {true, unix.MS_NODIRATIME}, "diratime": {false, unix.MS_NODIRATIME},
	"relatime": {true, unix.MS_RELATIME}, "strictatime": {true, unix.MS_STRICTATIME},
	"defaults": {false, 0},
}

var propagationFlags = map[string]uintptr{
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMount reads mount(8)'s arguments: [-t TYPE] [-o OPTIONS]
// [--bind|--rbind|--make-PROPAGATION] SOURCE TARGET, or TARGET alone with
// a --make-* flag.
func parseMount(args []string) (*mountCall, error) {
	m := &mountCall{}
	var opts []string
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", a)
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "-t" || a == "--types":
			v, err := next()
			if err != nil {
				return nil, err
			}
			m.fstype = v
		case a == "-o" || a == "--options":
			v, err := next()
			if err != nil {
				return nil, err
			}
			opts = append(opts, strings.Split(v, ",")...)
		case a == "--bind" || a == "-B":
			opts = append(opts, "bind")
		case a == "--rbind" || a == "-R":
			opts = append(opts, "rbind")
		case strings.HasPrefix(a, "--make-"):
			opts = append(opts, strings.TrimPrefix(a, "--make-"))
		case a == "-n" || a == "--no-canonicalize" || a == "-c" || a == "-i" || a == "--no-mtab":
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, fmt.Errorf("option %s is not supported", a)
		default:
			pos = append(pos, a)
		}
	}
	for _, o := range opts {
		if o == "" {
			continue
		}
		if f, ok := mountFlags[o]; ok {
			if f.set {
				m.flags |= f.value
			} else {
				m.flags &^= f.value
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			m.propagation = p
			continue
		}
		m.data = append(m.data, o)
	}
	switch {
	case len(pos) == 2:
		m.source, m.target = pos[0], pos[1]
	case len(pos) == 1 && (m.propagation != 0 || m.flags&unix.MS_REMOUNT != 0):
		m.target = pos[0]
	default:
		return nil, fmt.Errorf("usage: mount [-t TYPE] [-o OPTIONS] SOURCE TARGET (got %d operands)", len(pos))
	}
	if m.fstype == "" && m.flags&(unix.MS_BIND|unix.MS_REMOUNT) == 0 && m.propagation == 0 {
		return nil, fmt.Errorf("give the file system type with -t (this mount does not probe)")
	}
	return m, nil
}

func (m *mountCall) run() error {
	flags := m.flags
	// A bind mount ignores other flags; they take effect on a remount.
	if flags&unix.MS_BIND != 0 && flags&unix.MS_REMOUNT == 0 {
		if err := unix.Mount(m.source, m.target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return fmt.Errorf("binding %s on %s: %w", m.source, m.target, err)
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := unix.Mount("", m.target, "", unix.MS_REMOUNT|unix.MS_BIND|rest, ""); err != nil {
				return fmt.Errorf("remounting %s: %w", m.target, err)
			}
		}
	} else if flags != 0 || m.fstype != "" {
		if err := unix.Mount(m.source, m.target, m.fstype, flags, strings.Join(m.data, ",")); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.source, m.target, err)
		}
	}
	if m.propagation != 0 {
		if err := unix.Mount("", m.target, "", m.propagation, ""); err != nil {
			return fmt.Errorf("changing the propagation of %s: %w", m.target, err)
		}
	}
	return nil
}
