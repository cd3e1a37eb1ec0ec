// Command storefront is the demo shop `make run` starts beside piivault,
// so a newcomer can try the browser checkout: cart → checkout form → order
// held in piivault → in the staff console's queue.
//
//	PIIVAULT_URL=http://127.0.0.1:8080 STOREFRONT_API_KEY=pvk_… STOREFRONT_PUBLISHABLE_KEY=pk_… \
//	  STOREFRONT_LISTEN=127.0.0.1:8090 go run ./examples/storefront
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"piivault/examples/storefront/shop"
)

func main() {
	listen := os.Getenv("STOREFRONT_LISTEN")
	if listen == "" {
		listen = "127.0.0.1:8090"
	}
	for _, v := range []string{"PIIVAULT_URL", "STOREFRONT_API_KEY", "STOREFRONT_PUBLISHABLE_KEY"} {
		if os.Getenv(v) == "" {
			fmt.Fprintf(os.Stderr, "storefront: %s is required\n", v)
			os.Exit(2)
		}
	}
	s := shop.New(shop.Config{PiiVaultURL: os.Getenv("PIIVAULT_URL"), APIKey: os.Getenv("STOREFRONT_API_KEY"),
		PublishableKey: os.Getenv("STOREFRONT_PUBLISHABLE_KEY"), Log: os.Stdout})
	srv := &http.Server{Addr: listen, Handler: s, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(os.Stderr, "demo storefront on http://%s\n", listen)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "storefront:", err)
		os.Exit(1)
	}
}
