// Command e2eapp is the workload of cairn's end-to-end tests, packaged as
// a container image by the tests themselves (no registry is reachable
// here). It is static and needs nothing from its image but itself.
//
//	e2eapp serve              answer HTTP on :8080 with the pod's host name
//	e2eapp get URL            print what URL answers (5 s timeout)
//	e2eapp dial HOST:PORT     connect over TCP and close (5 s timeout)
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2eapp serve | get URL | dial HOST:PORT")
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
	default:
		os.Exit(2)
	}
}
