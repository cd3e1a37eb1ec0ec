package vault

// TokenOf exposes a client's current token to tests.
func TokenOf(c *Client) string { return c.api.Token() }
