// Command totp prints the current TOTP code for a base32 secret or an
// otpauth:// URL. It is a development aid for `make run`'s demo staff, so the
// login can be tried without a phone; never use it with a real account.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./scripts/totp SECRET|otpauth://...")
		os.Exit(2)
	}
	secret := os.Args[1]
	if strings.HasPrefix(secret, "otpauth://") {
		k, err := otp.NewKeyFromURL(secret)
		if err != nil {
			fmt.Fprintln(os.Stderr, "totp:", err)
			os.Exit(1)
		}
		secret = k.Secret()
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "totp:", err)
		os.Exit(1)
	}
	fmt.Println(code)
}
