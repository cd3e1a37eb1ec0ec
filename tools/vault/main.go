// Command vault is HashiCorp Vault's own main, built from the official module so
// that development and tests run the real server without downloading a binary.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
