// probe is kpyops' test workload: one static binary, no shell, for pods that serve and
// pods that check.
//
//	probe serve [PORT]    answer HTTP on PORT (8080): GET / says "pod=NAME node=NODE",
//	                      GET /healthz says "ok"
//	probe check URL...    GET each URL once, each on a new connection (names resolved by the
//	                      pod's resolver, that is the cluster DNS), print each answer; exit 1
//	                      if any fails
//	probe lookup NAME...  resolve each name, print its addresses; exit 1 if any fails
//	probe -v              print the version
//
// POD_NAME and NODE_NAME come from the pod's environment (the downward API).
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

var version = "dev"

const timeout = 3 * time.Second

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "-v":
		fmt.Printf("probe %s\n", version)
	case "serve":
		port := "8080"
		if len(os.Args) > 2 {
			port = os.Args[2]
		}
		serve(port)
	case "check":
		os.Exit(check(os.Args[2:]))
	case "lookup":
		os.Exit(lookup(os.Args[2:]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: probe serve [PORT] | probe check URL... | probe lookup NAME... | probe -v")
	os.Exit(2)
}

func serve(port string) {
	who := fmt.Sprintf("pod=%s node=%s\n", os.Getenv("POD_NAME"), os.Getenv("NODE_NAME"))
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, who)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: timeout}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func check(urls []string) int {
	// a new connection per URL: each request is balanced afresh by the service proxy
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	for _, url := range urls {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Printf("%s: %v\n", url, err)
			failed++
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Printf("%s: HTTP %d %v\n", url, resp.StatusCode, err)
			failed++
			continue
		}
		fmt.Printf("%s: %s\n", url, strings.TrimSpace(string(body)))
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func lookup(names []string) int {
	failed := 0
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		cancel()
		if err != nil {
			fmt.Printf("%s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Printf("%s: %s\n", name, strings.Join(addrs, " "))
	}
	if failed > 0 {
		return 1
	}
	return 0
}
