package vault

// TokenOf exposes a client's current token to tests.
func TokenOf(c *Client) string { return c.api.Token() }

// IndexHMACPath is the path (under /v1/) of c's blind-index HMAC call.
func IndexHMACPath(c *Client) string { return c.mount + "/hmac/" + c.indexKey + "/sha2-256" }
