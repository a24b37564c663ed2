// Command pause is the sandbox ("pause") container of the local cluster: no registry is reachable
// here, so containerd gets this static binary instead of registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	// Reap orphans: the pause process is PID 1 of the Pod's shared PID namespace when enabled.
	signal.Ignore(syscall.SIGCHLD)
	<-sigs
}
