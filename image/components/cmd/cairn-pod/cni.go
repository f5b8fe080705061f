package main

import (
	"runtime"

	"github.com/cairn-os/cairn/image/components/internal/cni/bridge"
	"github.com/cairn-os/cairn/image/components/internal/cni/hostlocal"
	"github.com/cairn-os/cairn/image/components/internal/cni/loopback"
	"github.com/cairn-os/cairn/image/components/internal/cni/portmap"
)

// The CNI plugins are upstream's, turned into packages by gencni.sh. Each
// runs on the main thread as upstream's do: namespace switches (setns)
// apply to one OS thread.

func cniBridge() int    { return cniRun(bridge.Init, bridge.Main) }
func cniHostLocal() int { return cniRun(hostlocal.Init, hostlocal.Main) }
func cniLoopback() int  { return cniRun(loopback.Init, loopback.Main) }
func cniPortmap() int   { return cniRun(portmap.Init, portmap.Main) }

func cniRun(initFn, mainFn func()) int {
	runtime.LockOSThread()
	initFn()
	mainFn() // exits the process itself on failure
	return 0
}
