package vault

import (
	"context"
	"fmt"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"piivault/internal/apperr"
)

// Names that setup creates. Roles map one-to-one onto policies.
const (
	PolicyPrefix       = "piivault-"
	ServicePolicy      = "piivault-service"
	PasswordPolicy     = "piivault-staff"
	UserpassMount      = "userpass"
	AppRoleMount       = "approle"
	AppRoleName        = "piivault"
	MFAMethodName      = "piivault-totp"
	MFAEnforcementName = "piivault-staff-login"
	MFAIssuer          = "piivault"
	// AnchorMount is a KV v2 mount only the service identity may write: it
	// holds the audit trail's anchor, outside Redis.
	AnchorMount = "piivault-kv"
	AnchorPath  = "audit/anchor"
)

// Roles are the staff roles, each backed by the policy PolicyPrefix+role.
var Roles = []string{"fulfillment", "support", "admin", "auditor"}

// Policies returns every policy setup writes, by name. The service may
// encrypt, HMAC and manage key versions but is explicitly denied decrypt:
// only staff tokens with the fulfillment policy can decrypt the full
// shipping block, and support's policy opens only the masked copy, so
// Vault itself enforces what each role sees.
func Policies(mount, key string) map[string]string {
	idx, seal, masked := IndexKeyName(key), SealKeyName(key), MaskedKeyName(key)
	self := `
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self"  { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
`
	decrypt := func(k string) string {
		return fmt.Sprintf("path \"%s/decrypt/%s\" { capabilities = [\"update\"] }\n", mount, k)
	}
	keyAdmin := func(k string) string {
		return fmt.Sprintf(`path "%[1]s/keys/%[2]s"          { capabilities = ["read"] }
path "%[1]s/keys/%[2]s/rotate"   { capabilities = ["update"] }
path "%[1]s/keys/%[2]s/config"   { capabilities = ["update"] }
path "%[1]s/keys/%[2]s/trim"     { capabilities = ["update"] }
`, mount, k)
	}
	return map[string]string{
		ServicePolicy: fmt.Sprintf(`# piivault service identity: encrypt and blind-index, never decrypt.
path "%[1]s/encrypt/%[2]s"       { capabilities = ["update"] }
path "%[1]s/encrypt/%[5]s"       { capabilities = ["update"] }
path "%[1]s/hmac/%[3]s"          { capabilities = ["update"] }
path "%[1]s/hmac/%[3]s/*"        { capabilities = ["update"] }
path "%[1]s/hmac/%[4]s"          { capabilities = ["update"] }
path "%[1]s/hmac/%[4]s/*"        { capabilities = ["update"] }
path "%[1]s/verify/%[4]s"        { capabilities = ["update"] }
path "%[1]s/verify/%[4]s/*"      { capabilities = ["update"] }
path "%[1]s/decrypt/*"           { capabilities = ["deny"] }
path "%[1]s/rewrap/*"            { capabilities = ["deny"] }
path "%[1]s/export/*"            { capabilities = ["deny"] }
# The audit trail's anchor: only this identity writes it (check-and-set).
path "%[6]s/data/%[7]s"     { capabilities = ["create", "update", "read"] }
# The key that seals console session cookies (made once, shared by instances).
path "%[6]s/data/console/key"  { capabilities = ["create", "read"] }
# The admin console's staff list: names and roles, no secrets.
path "auth/%[8]s/users"   { capabilities = ["list"] }
path "auth/%[8]s/users/*" { capabilities = ["read"] }
# Lockdown revokes every staff token at once.
path "sys/leases/revoke-prefix/auth/%[8]s/login*" { capabilities = ["update", "sudo"] }
# Suspension and lockdown hold in Vault: the service may switch a staff
# entity off and on, and change nothing else about it.
path "identity/entity/name/*" {
  capabilities = ["update"]
  allowed_parameters = { "disabled" = [] }
}
# serve refuses to run as an identity that may decrypt: it asks Vault.
path "sys/capabilities-self" { capabilities = ["update"] }
`, mount, key, idx, seal, masked, AnchorMount, AnchorPath, UserpassMount) + keyAdmin(key) + keyAdmin(masked) + self,
		PolicyPrefix + "fulfillment": "# Fulfillment staff: reveal full shipping blocks.\n" + decrypt(key) + self,
		PolicyPrefix + "support":     "# Support staff: reveal the masked copy only; Vault refuses them the full block.\n" + decrypt(masked) + self,
		PolicyPrefix + "admin":       "# Admins: manage purges and blocks through piivault; no decrypt.\n" + self,
		PolicyPrefix + "auditor":     "# Auditors: read the audit trail through piivault; no decrypt.\n" + self,
	}
}

// PasswordPolicyHCL requires 20 characters with every class present; staff
// passwords chosen by hand are checked by piivault against the same classes.
// The symbols avoid ! " ' \ $ and backquote, so a generated password can be
// pasted into a shell or a JSON string as it is.
const PasswordPolicyHCL = `length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 2
}
rule "charset" {
  charset = "0123456789"
  min-chars = 2
}
rule "charset" {
  charset = "#%*+-.:=?@^_~"
  min-chars = 2
}
`

// SetupReport lists what setup did, one line per step. It never holds a secret.
type SetupReport struct {
	Steps []string
}

func (r *SetupReport) add(format string, args ...any) {
	r.Steps = append(r.Steps, fmt.Sprintf(format, args...))
}

// SetupOptions tune Setup.
type SetupOptions struct {
	// AuditFile, when set, enables Vault's file audit device writing there,
	// so Vault names the person behind every decrypt independently of piivault.
	AuditFile string
	// BindCIDRs, when set, restricts where the service's AppRole secret ids
	// and tokens may be used from (the addresses piivault runs on).
	BindCIDRs []string
}

// Setup bootstraps Vault for piivault. It is idempotent: each step checks
// what exists and only creates or corrects what is missing. It needs an
// operator token (root in dev).
func (o *Operator) Setup(ctx context.Context, opts ...SetupOptions) (SetupReport, error) {
	var opt SetupOptions
	if len(opts) > 0 {
		opt = opts[0]
	}
	var r SetupReport
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	steps := []struct {
		name string
		fn   func(context.Context, *SetupReport) error
	}{
		{"transit mount", o.setupTransit},
		{"transit keys", o.setupKeys},
		{"policies", o.setupPolicies},
		{"password policy", o.setupPasswordPolicy},
		{"userpass", func(ctx context.Context, r *SetupReport) error {
			return o.enableAuth(ctx, r, UserpassMount, "userpass")
		}},
		{"approle", func(ctx context.Context, r *SetupReport) error { return o.enableAuth(ctx, r, AppRoleMount, "approle") }},
		{"approle role", func(ctx context.Context, r *SetupReport) error { return o.setupAppRole(ctx, r, opt.BindCIDRs) }},
		{"login mfa", o.setupMFA},
		{"userpass lockout", o.setupLockout},
		{"staff tokens", o.setupStaffTokens},
		{"audit anchor store", o.setupAnchorMount},
		{"vault audit device", func(ctx context.Context, r *SetupReport) error { return o.setupAuditDevice(ctx, r, opt.AuditFile) }},
	}
	for _, s := range steps {
		if err := s.fn(ctx, &r); err != nil {
			return r, fmt.Errorf("setup %s: %w", s.name, err)
		}
	}
	return r, nil
}

func (o *Operator) setupTransit(ctx context.Context, r *SetupReport) error {
	mounts, err := o.api.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return translate(err, "list mounts")
	}
	if m, ok := mounts[o.mount+"/"]; ok {
		if m.Type != "transit" {
			return fmt.Errorf("mount %q exists but is %q, not transit", o.mount, m.Type)
		}
		r.add("transit mount %q: exists", o.mount)
		return nil
	}
	if err := o.api.Sys().MountWithContext(ctx, o.mount, &vaultapi.MountInput{Type: "transit", Description: "piivault: order PII encryption"}); err != nil {
		return translate(err, "mount transit")
	}
	r.add("transit mount %q: created", o.mount)
	return nil
}

func (o *Operator) setupKeys(ctx context.Context, r *SetupReport) error {
	keys := []struct {
		name   string
		config map[string]any
	}{
		// Rotated daily; old versions are retired with min_decryption_version
		// and trim, never by deleting the key.
		{o.key, map[string]any{"auto_rotate_period": "24h", "deletion_allowed": false}},
		// The blind-index key is not rotated: a new version would change the
		// HMAC of an email and break deletion lookups of held orders.
		{IndexKeyName(o.key), map[string]any{"deletion_allowed": false}},
		// The audit seal key is never trimmed: old entries must stay verifiable.
		{SealKeyName(o.key), map[string]any{"deletion_allowed": false}},
		// The masked copy (support's view) is shredded like the full block.
		{MaskedKeyName(o.key), map[string]any{"auto_rotate_period": "24h", "deletion_allowed": false}},
	}
	for _, k := range keys {
		path := o.mount + "/keys/" + k.name
		s, err := o.api.Logical().ReadWithContext(ctx, path)
		if err != nil && !isNotFoundErr(err) {
			return translate(err, "read key")
		}
		if s == nil {
			if _, err := o.api.Logical().WriteWithContext(ctx, path, map[string]any{"type": "aes256-gcm96"}); err != nil {
				return translate(err, "create key")
			}
			r.add("transit key %q: created (aes256-gcm96)", k.name)
		} else {
			if t, _ := s.Data["type"].(string); t != "aes256-gcm96" {
				return fmt.Errorf("transit key %q exists with type %q, want aes256-gcm96", k.name, t)
			}
			r.add("transit key %q: exists", k.name)
		}
		if _, err := o.api.Logical().WriteWithContext(ctx, path+"/config", k.config); err != nil {
			return translate(err, "configure key")
		}
	}
	return nil
}

func (o *Operator) setupPolicies(ctx context.Context, r *SetupReport) error {
	for name, hcl := range Policies(o.mount, o.key) {
		old, err := o.api.Sys().GetPolicyWithContext(ctx, name)
		if err != nil {
			return translate(err, "read policy")
		}
		if old == hcl {
			r.add("policy %q: up to date", name)
			continue
		}
		if err := o.api.Sys().PutPolicyWithContext(ctx, name, hcl); err != nil {
			return translate(err, "write policy")
		}
		if old == "" {
			r.add("policy %q: created", name)
		} else {
			r.add("policy %q: updated", name)
		}
	}
	return nil
}

func (o *Operator) setupPasswordPolicy(ctx context.Context, r *SetupReport) error {
	path := "sys/policies/password/" + PasswordPolicy
	s, err := o.api.Logical().ReadWithContext(ctx, path)
	if err != nil && !isNotFoundErr(err) {
		return translate(err, "read password policy")
	}
	if s != nil && s.Data["policy"] == PasswordPolicyHCL {
		r.add("password policy %q: up to date", PasswordPolicy)
		return nil
	}
	if _, err := o.api.Logical().WriteWithContext(ctx, path, map[string]any{"policy": PasswordPolicyHCL}); err != nil {
		return translate(err, "write password policy")
	}
	r.add("password policy %q: written", PasswordPolicy)
	return nil
}

func (o *Operator) enableAuth(ctx context.Context, r *SetupReport, mount, typ string) error {
	auths, err := o.api.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return translate(err, "list auth")
	}
	if a, ok := auths[mount+"/"]; ok {
		if a.Type != typ {
			return fmt.Errorf("auth mount %q exists but is %q, not %q", mount, a.Type, typ)
		}
		r.add("auth %q: enabled", mount)
		return nil
	}
	if err := o.api.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &vaultapi.EnableAuthOptions{Type: typ, Description: "piivault staff and service logins"}); err != nil {
		return translate(err, "enable auth")
	}
	r.add("auth %q: enabled now", mount)
	return nil
}

// setupAppRole writes the service role. Address bindings are written only
// when given, so re-running setup never widens a binding made earlier.
func (o *Operator) setupAppRole(ctx context.Context, r *SetupReport, cidrs []string) error {
	role := map[string]any{
		"token_policies": []string{ServicePolicy},
		// Vault's default policy is templated ({{identity.entity.id}}), so
		// Vault parses it again on every request a token carrying it makes:
		// about a third of Vault's CPU per transit call here. piivault's
		// policies grant each token exactly what it uses.
		"token_no_default_policy": true,
		"token_ttl":               "1h",
		"token_max_ttl":           "24h",
		"secret_id_num_uses":      0,
		"secret_id_ttl":           "0",
	}
	bound := "existing address bindings kept"
	if len(cidrs) > 0 {
		role["token_bound_cidrs"], role["secret_id_bound_cidrs"] = cidrs, cidrs
		bound = "usable from " + strings.Join(cidrs, ", ")
	}
	if _, err := o.api.Logical().WriteWithContext(ctx, "auth/"+AppRoleMount+"/role/"+AppRoleName, role); err != nil {
		return translate(err, "write approle role")
	}
	r.add("approle role %q: written (policy %s, %s)", AppRoleName, ServicePolicy, bound)
	return nil
}

// setupStaffTokens gives staff members added before piivault left out
// Vault's default policy the same token settings as new ones (see
// setupAppRole): their tokens then carry their role's policy alone.
func (o *Operator) setupStaffTokens(ctx context.Context, r *SetupReport) error {
	s, err := o.api.Logical().ListWithContext(ctx, "auth/"+UserpassMount+"/users")
	if err != nil && !isNotFoundErr(err) {
		return translate(err, "list staff")
	}
	n := 0
	if s != nil {
		keys, _ := s.Data["keys"].([]any)
		for _, k := range keys {
			name, _ := k.(string)
			u, err := o.api.Logical().ReadWithContext(ctx, "auth/"+UserpassMount+"/users/"+name)
			if err != nil {
				return translate(err, "read staff member")
			}
			if u == nil || u.Data["token_no_default_policy"] == true {
				continue
			}
			if _, err := o.api.Logical().WriteWithContext(ctx, "auth/"+UserpassMount+"/users/"+name,
				map[string]any{"token_no_default_policy": true}); err != nil {
				return translate(err, "update staff member")
			}
			n++
		}
	}
	if n > 0 {
		r.add("staff tokens: %d members' tokens now carry their role's policy alone (no default policy)", n)
	} else {
		r.add("staff tokens: every member's tokens carry their role's policy alone")
	}
	return nil
}

// mountAccessor returns the accessor of an auth mount.
func (o *Operator) mountAccessor(ctx context.Context, mount string) (string, error) {
	auths, err := o.api.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return "", translate(err, "list auth")
	}
	a, ok := auths[mount+"/"]
	if !ok {
		return "", apperr.New(apperr.NotFound, "auth mount %q is not enabled; run piivault setup", mount)
	}
	return a.Accessor, nil
}

// mfaMethodID finds the TOTP method setup created, by name.
func (o *Operator) mfaMethodID(ctx context.Context) (string, error) {
	s, err := o.api.Logical().ListWithContext(ctx, "identity/mfa/method/totp")
	if err != nil && !isNotFoundErr(err) {
		return "", translate(err, "list mfa methods")
	}
	if s == nil {
		return "", nil
	}
	info, _ := s.Data["key_info"].(map[string]any)
	for id, v := range info {
		m, _ := v.(map[string]any)
		if name, _ := m["name"].(string); name == MFAMethodName {
			return id, nil
		}
	}
	return "", nil
}

func (o *Operator) setupMFA(ctx context.Context, r *SetupReport) error {
	id, err := o.mfaMethodID(ctx)
	if err != nil {
		return err
	}
	params := map[string]any{
		"method_name": MFAMethodName, "issuer": MFAIssuer, "period": 30, "digits": 6,
		"algorithm": "SHA1", "key_size": 20, "skew": 1, "max_validation_attempts": 5,
	}
	if id == "" {
		s, err := o.api.Logical().WriteWithContext(ctx, "identity/mfa/method/totp", params)
		if err != nil {
			return translate(err, "create totp method")
		}
		id, _ = s.Data["method_id"].(string)
		r.add("totp login mfa method %q: created", MFAMethodName)
	} else {
		r.add("totp login mfa method %q: exists", MFAMethodName)
	}
	acc, err := o.mountAccessor(ctx, UserpassMount)
	if err != nil {
		return err
	}
	if _, err := o.api.Logical().WriteWithContext(ctx, "identity/mfa/login-enforcement/"+MFAEnforcementName, map[string]any{
		"mfa_method_ids":        []string{id},
		"auth_method_accessors": []string{acc},
	}); err != nil {
		return translate(err, "write login enforcement")
	}
	r.add("login mfa enforcement %q on %s/: written", MFAEnforcementName, UserpassMount)
	return nil
}

// AppRoleCredentials returns the service AppRole's role_id and a new
// secret_id. Only `setup --approle-env` asks for them, to hand to `serve`.
func (o *Operator) AppRoleCredentials(ctx context.Context) (roleID, secretID string, err error) {
	base := "auth/" + AppRoleMount + "/role/" + AppRoleName
	s, err := o.api.Logical().ReadWithContext(ctx, base+"/role-id")
	if err != nil || s == nil {
		return "", "", fmt.Errorf("read role-id: %w", translate(err, "read role-id"))
	}
	roleID, _ = s.Data["role_id"].(string)
	s, err = o.api.Logical().WriteWithContext(ctx, base+"/secret-id", nil)
	if err != nil || s == nil {
		return "", "", fmt.Errorf("create secret-id: %w", translate(err, "create secret-id"))
	}
	secretID, _ = s.Data["secret_id"].(string)
	return roleID, secretID, nil
}

// RoleFromPolicies derives a staff role from a token's policies.
func RoleFromPolicies(policies []string) string {
	for _, p := range policies {
		role := strings.TrimPrefix(p, PolicyPrefix)
		for _, r := range Roles {
			if role == r && p != role {
				return r
			}
		}
	}
	return ""
}

// setupLockout switches Vault's userpass lockout off. Left on (Vault's
// default: 5 wrong passwords lock the user for 15 minutes), anyone who knows
// a username could lock that member out with five requests. Guessing is
// already bounded by piivault's IP blocks and by the TOTP code every login
// needs; the TOTP method keeps its own limit of 5 wrong codes, which needs
// the right password to reach. `staff unlock` lifts a lockout left from before.
func (o *Operator) setupLockout(ctx context.Context, r *SetupReport) error {
	path := "sys/mounts/auth/" + UserpassMount + "/tune"
	if _, err := o.api.Logical().WriteWithContext(ctx, path, map[string]any{
		"user_lockout_config": map[string]any{"lockout_disable": true},
	}); err != nil {
		return translate(err, "tune userpass lockout")
	}
	// Vault ignores keys it does not know in that object: read it back.
	s, err := o.api.Logical().ReadWithContext(ctx, "sys/auth/"+UserpassMount+"/tune")
	if err != nil {
		return translate(err, "read userpass tuning")
	}
	if s == nil || s.Data["user_lockout_disable"] != true {
		return fmt.Errorf("vault did not switch the userpass lockout off")
	}
	r.add("userpass lockout: off (IP blocks and TOTP guard guessing; no one can lock a member out)")
	return nil
}

// setupAnchorMount enables the KV v2 mount that holds the audit anchor.
func (o *Operator) setupAnchorMount(ctx context.Context, r *SetupReport) error {
	mounts, err := o.api.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return translate(err, "list mounts")
	}
	if m, ok := mounts[AnchorMount+"/"]; ok {
		if m.Type != "kv" || m.Options["version"] != "2" {
			return fmt.Errorf("mount %q exists but is not KV version 2", AnchorMount)
		}
		r.add("kv mount %q: exists", AnchorMount)
		return nil
	}
	if err := o.api.Sys().MountWithContext(ctx, AnchorMount, &vaultapi.MountInput{Type: "kv",
		Options: map[string]string{"version": "2"}, Description: "piivault: audit trail anchor"}); err != nil {
		return translate(err, "mount kv")
	}
	r.add("kv mount %q: created (audit trail anchor)", AnchorMount)
	return nil
}

// setupAuditDevice enables Vault's file audit device at path, once.
func (o *Operator) setupAuditDevice(ctx context.Context, r *SetupReport, path string) error {
	if path == "" {
		return nil
	}
	devices, err := o.api.Sys().ListAuditWithContext(ctx)
	if err != nil {
		return translate(err, "list audit devices")
	}
	for name, d := range devices {
		if d.Type == "file" && d.Options["file_path"] == path {
			r.add("vault audit device %q: enabled (%s)", strings.TrimSuffix(name, "/"), path)
			return nil
		}
	}
	if err := o.api.Sys().EnableAuditWithOptionsWithContext(ctx, "piivault-file", &vaultapi.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": path},
		Description: "piivault: Vault's own record of every decrypt",
	}); err != nil {
		return translate(err, "enable audit device")
	}
	r.add("vault audit device %q: enabled now (%s)", "piivault-file", path)
	return nil
}
