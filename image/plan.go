package image

import (
	"fmt"
	"strings"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/image/kmod"
	"github.com/cavaliergopher/cpio"
)

// plan is what a build makes, decided from its settings and inputs without
// touching the disk: the module subsets, the two file trees (system image
// and stage-1 initramfs), the codecs and the kernel command line.
type plan struct {
	b              *boards.Board
	k              *Kernel
	debPath        string
	comp, sqComp   string
	level          int
	epoch          int64
	stage1, system []*kmod.Module
	sys, ird       tree
	initIn         *InitInput
	compIn         *ComponentsInput
	cfgData        []byte
	cfgName        string
	// cmdline is the board's kernel command line; each format adds the
	// cairn.system word that says where its system image is.
	cmdline string
}

// makePlan decides what to build. compression and extra are
// Options.Compression and Options.Modules.
func makePlan(s *settings, in *inputs, compression string, extra []string) (*plan, error) {
	b, k := s.board, in.k
	comp, err := initramfsCodec(compression, k)
	if err != nil {
		return nil, err
	}
	sqComp, err := squashfsCodec(k)
	if err != nil {
		return nil, err
	}

	// Modules: the initramfs gets what stage 1 needs, the system image
	// also what the node needs.
	stage1, err := k.Modules.Closure(append(append([]string{}, b.Modules...), layout.Stage1Modules...))
	if err != nil {
		return nil, fmt.Errorf("board %s: %w; fix the board's module list", b.Name, err)
	}
	wantSys := append(append(append([]string{}, b.Modules...), layout.Stage1Modules...), NodeModules...)
	system, err := k.Modules.Closure(append(wantSys, extra...))
	if err != nil {
		return nil, fmt.Errorf("%w; fix the module list", err)
	}

	// The system image.
	sys := tree{}
	addBase(sys)
	for p, n := range in.overlay {
		sys[p] = n
	}
	sys.file("sbin/init", 0o755, in.initBin)
	// The kernel runs /sbin/modprobe for modules it needs; the init answers.
	sys.symlink("sbin/modprobe", "init")
	addModules(sys, k, system)
	sys.bytes(layout.BoardFile, 0o644, s.rawBoard)
	if in.cfgData != nil {
		sys.bytes(layout.ConfigFile, 0o600, in.cfgData)
	}
	if in.k3s != "" {
		sys.file("usr/bin/k3s", 0o755, in.k3s)
	}
	var compIn *ComponentsInput
	if in.compIn != nil {
		n := len(sys)
		for p, nd := range in.components {
			sys[p] = nd
		}
		c := *in.compIn
		c.Files = len(sys) - n
		compIn = &c
	}
	// The initramfs: a compressed cpio with the init and stage-1 modules;
	// live boots append an uncompressed cpio holding the system image.
	ird := tree{}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "mnt", "root"} {
		ird.mkdirAll(d)
	}
	// No device nodes: the kernel's built-in initramfs, unpacked first,
	// has /dev/console, and the init mounts devtmpfs before anything else.
	ird.file("init", 0o755, in.initBin)
	// Modules the kernel asks for itself (crc32c for ext4) come through
	// the init's modprobe, as in the system image.
	ird.symlink("sbin/modprobe", "../init")
	addModules(ird, k, stage1)
	ird.bytes(layout.BoardFile, 0o644, s.rawBoard)

	return &plan{b: b, k: k, debPath: in.debPath, comp: comp, sqComp: sqComp, level: s.level, epoch: s.epoch,
		stage1: stage1, system: system, sys: sys, ird: ird, initIn: in.initIn, compIn: compIn,
		cfgData: in.cfgData, cfgName: in.cfgName, cmdline: strings.TrimSpace(b.Cmdline)}, nil
}

// cmdlineFor is the kernel command line of a boot whose system image is
// where system (a layout.System* value) says.
func (p *plan) cmdlineFor(system string, more ...string) string {
	return strings.Join(append([]string{p.cmdline, layout.SystemParam + "=" + system}, more...), " ")
}

// addBase adds the base directories of the system image, which the init
// mounts over or writes to.
func addBase(t tree) {
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "mnt", "root", "var", "etc/cairn", "usr/bin", "usr/lib"} {
		t.mkdirAll(d)
	}
	t["tmp"].mode = cpio.TypeDir | 0o1777
	t["root"].mode = cpio.TypeDir | 0o700
	t.symlink("bin", "usr/bin")
}

func addModules(t tree, k *Kernel, mods []*kmod.Module) {
	base := "lib/modules/" + k.Release + "/"
	for _, m := range mods {
		t.file(base+m.Path, 0o644, k.ModulePath(m.Path))
	}
	idx := k.Modules.BuildIndex(mods)
	t.bytes(base+"modules.dep", 0o644, []byte(idx.Dep))
	t.bytes(base+"modules.alias", 0o644, []byte(idx.Alias))
	t.bytes(base+"modules.softdep", 0o644, []byte(idx.Softdep))
	t.bytes(base+"modules.builtin", 0o644, []byte(idx.Builtin))
}
