// pause: the process that holds a Pod's namespaces (the "sandbox" container).
//
// Kubernetes' own pause image cannot be pulled here, so the node builds this one: a static
// binary in an image FROM scratch. Like upstream's pause it sleeps until SIGINT or SIGTERM
// and, as PID 1 of a Pod that shares its process namespace, reaps orphaned children.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
