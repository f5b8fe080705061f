package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// qmpCommand connects to QEMU's QMP socket, negotiates capabilities, runs one
// command and returns its "return" value. Events arriving meanwhile are
// skipped. For "quit" an EOF before the reply counts as success.
func qmpCommand(ctx context.Context, path, command string, args any) (json.RawMessage, error) {
	var d net.Dialer
	var conn net.Conn
	var err error
	// QEMU creates the socket shortly after it starts; retry until then.
	for {
		conn, err = d.DialContext(ctx, "unix", path)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: connect to %s: %w", command, path, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	r := bufio.NewReader(conn)
	type qmpError struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	}
	type reply struct {
		QMP    json.RawMessage `json:"QMP"`
		Event  string          `json:"event"`
		Return json.RawMessage `json:"return"`
		Error  *qmpError       `json:"error"`
	}
	read := func() (reply, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return reply{}, err
			}
			var m reply
			if err := json.Unmarshal(line, &m); err != nil {
				return reply{}, fmt.Errorf("bad QMP message %q: %w", line, err)
			}
			if m.Event != "" || m.QMP != nil {
				continue
			}
			return m, nil
		}
	}
	send := func(cmd string, args any) (json.RawMessage, error) {
		msg := map[string]any{"execute": cmd}
		if args != nil {
			msg["arguments"] = args
		}
		b, _ := json.Marshal(msg)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, err
		}
		m, err := read()
		if err != nil {
			return nil, err
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", m.Error.Class, m.Error.Desc)
		}
		return m.Return, nil
	}
	// The greeting comes first; read() skips it along with events.
	if _, err := send("qmp_capabilities", nil); err != nil {
		return nil, fmt.Errorf("qmp %s: negotiate capabilities on %s: %w", command, path, err)
	}
	ret, err := send(command, args)
	if err != nil {
		if command == "quit" && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
			return nil, nil
		}
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	return ret, nil
}
