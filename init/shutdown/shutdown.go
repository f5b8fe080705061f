// Package shutdown turns signals and the power button into an orderly stop:
// services in reverse dependency order, then every remaining process, then
// the file systems, then power off or reboot.
package shutdown

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-os/cairn/init/supervise"
)

// Action is what the machine does at the end of a shutdown.
type Action int

const (
	// Poweroff turns the machine off.
	Poweroff Action = iota
	// Reboot restarts it.
	Reboot
)

func (a Action) String() string {
	if a == Reboot {
		return "reboot"
	}
	return "poweroff"
}

// Request is one reason to shut down.
type Request struct {
	Action Action
	// By names what asked: a signal name or "acpi button".
	By string
}

// Signals maps the signals PID 1 acts on to what they ask for. SIGINT is
// what the kernel sends for Ctrl-Alt-Del once DisableCAD handed it to us.
var Signals = map[os.Signal]Action{
	syscall.SIGTERM: Poweroff,
	syscall.SIGUSR2: Poweroff,
	syscall.SIGPWR:  Poweroff,
	syscall.SIGINT:  Reboot,
}

// Watch sends a Request for each shutdown signal and, when buttons is
// true, each press of a power key, until ctx ends.
func Watch(ctx context.Context, buttons bool) <-chan Request {
	out := make(chan Request, 4)
	sig := make(chan os.Signal, 4)
	for s := range Signals {
		signal.Notify(sig, s)
	}
	supervise.Go("shutdown signals", func() {
		for {
			select {
			case <-ctx.Done():
				signal.Stop(sig)
				return
			case s := <-sig:
				out <- Request{Action: Signals[s], By: signalName(s)}
			}
		}
	})
	if buttons {
		supervise.Go("power button", func() {
			watchPowerKeys(ctx, "/sys/class/input", "/dev/input", func() {
				out <- Request{Action: Poweroff, By: "acpi button"}
			})
		})
	}
	return out
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGPWR:
		return "SIGPWR"
	}
	return s.String()
}

// Stopper stops the supervised services; *supervise.Supervisor is one.
type Stopper interface {
	Stop(ctx context.Context)
}

// Options describe how to end.
type Options struct {
	// Log writes one console line.
	Log func(text string)
	// Services are stopped first, in their reverse dependency order.
	Services []Stopper
	// Container ends the process instead of the machine: no unmounting,
	// no reboot system call (exit status 0 for poweroff, 1 for reboot).
	Container bool
	// RestartArg is reboot(2)'s argument for a restart, when the boot
	// loader needs one (LINUX_REBOOT_CMD_RESTART2): "0 tryboot" after an
	// upgrade armed a Raspberry Pi's trial boot (boot.RestartArg); "" for
	// a plain restart.
	RestartArg string
}

// logf writes a console line through o.Log, or slog when unset.
func (o Options) logf(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if o.Log != nil {
		o.Log(text)
		return
	}
	slog.Info(text)
}
