// Command vigil is the Vigil MQTT broker, client and load tool in one binary.
// Run "vigil --help" for the subcommands.
package main

import (
	"os"

	"github.com/vigilmq/vigil/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
