// Command e2eapp is the workload of cairn's end-to-end tests, packaged as
// a container image by the tests themselves (no registry is reachable
// here). It is static and needs nothing from its image but itself.
//
//	e2eapp serve              answer HTTP on :8080 with the pod's host name
//	e2eapp get URL            print what URL answers (5 s timeout)
//	e2eapp dial HOST:PORT     connect over TCP and close (5 s timeout)
//	e2eapp keep FILE          print "found FILE: LINE" when FILE holds a line, else
//	                          write one and print "wrote FILE: LINE"; then wait for SIGTERM
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2eapp serve | get URL | dial HOST:PORT | keep FILE")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		name, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name) })
		srv := &http.Server{Addr: ":8080", ReadHeaderTimeout: 5 * time.Second}
		fmt.Fprintln(os.Stderr, srv.ListenAndServe())
		os.Exit(1)
	case "get":
		if len(os.Args) != 3 {
			os.Exit(2)
		}
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, io.LimitReader(resp.Body, 1<<20))
	case "dial":
		if len(os.Args) != 3 {
			os.Exit(2)
		}
		conn, err := net.DialTimeout("tcp", os.Args[2], 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		conn.Close()
		fmt.Println("connected to", conn.RemoteAddr())
	case "keep":
		if len(os.Args) != 3 {
			os.Exit(2)
		}
		if err := keep(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
	default:
		os.Exit(2)
	}
}

// keep reads FILE's line, or writes one naming this pod and the moment
// (a replacement pod of the same name writes a different one), synced.
func keep(path string) error {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 4096))
		if err != nil {
			return err
		}
		fmt.Printf("found %s: %s\n", path, strings.TrimSpace(string(b)))
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	name, _ := os.Hostname()
	line := fmt.Sprintf("written by %s at %d", name, time.Now().UnixNano())
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s\n", path, line)
	return nil
}
