package vault

import (
	"context"
	"log/slog"

	vaultapi "github.com/hashicorp/vault/api"
)

// Operator is Vault as the operator sees it: the bootstrap (Setup), staff
// accounts, lockouts and the service's AppRole credentials. It is built only
// from an operator's token by the commands that need one (`setup`, `staff`,
// `lockdown`); the service's graph holds a *Client, which has none of these
// methods, so code running under the service identity cannot call them.
type Operator struct {
	c     *Client
	api   *vaultapi.Client
	mount string
	key   string
}

// NewOperator connects with the operator's token (cfg.Token).
func NewOperator(ctx context.Context, cfg Config, log *slog.Logger) (*Operator, error) {
	cfg.RoleID, cfg.SecretID = "", ""
	c, err := New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return &Operator{c: c, api: c.api, mount: c.mount, key: c.key}, nil
}

// Client is the operator's own token as a Client (transit calls made as the
// operator: tests decrypt with it to prove what a key can still open).
func (o *Operator) Client() *Client { return o.c }
