// Command pause is the test cluster's sandbox ("pause") image: a static binary that holds
// a pod's namespaces open by sleeping until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
