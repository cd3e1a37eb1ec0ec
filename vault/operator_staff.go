package vault

import (
	"context"
	"fmt"
	"sort"
	"time"

	"piivault/internal/apperr"
)

// GeneratePassword asks Vault's password policy for a new password.
func (o *Operator) GeneratePassword(ctx context.Context) (string, error) {
	s, err := o.api.Logical().ReadWithContext(ctx, "sys/policies/password/"+PasswordPolicy+"/generate")
	if err != nil || s == nil {
		return "", fmt.Errorf("generate password: %w", translate(err, "generate password"))
	}
	p, _ := s.Data["password"].(string)
	return p, nil
}

// CreateStaff creates a userpass user bound to the role's policy, an identity
// entity with an alias for it, and enrols the entity in TOTP login MFA.
// It refuses to touch an existing user: re-adding would reset a password.
func (o *Operator) CreateStaff(ctx context.Context, name, role, password string) (Enrolment, error) {
	userPath := "auth/" + UserpassMount + "/users/" + name
	if s, err := o.api.Logical().ReadWithContext(ctx, userPath); err != nil && !isNotFoundErr(err) {
		return Enrolment{}, translate(err, "read user")
	} else if s != nil {
		return Enrolment{}, apperr.New(apperr.Conflict, "staff member %q already exists", name)
	}
	methodID, err := o.mfaMethodID(ctx)
	if err != nil {
		return Enrolment{}, err
	}
	if methodID == "" {
		return Enrolment{}, apperr.New(apperr.NotFound, "no TOTP method in vault; run piivault setup first")
	}
	acc, err := o.mountAccessor(ctx, UserpassMount)
	if err != nil {
		return Enrolment{}, err
	}
	if _, err := o.api.Logical().WriteWithContext(ctx, userPath, map[string]any{
		"password":       password,
		"token_policies": []string{PolicyPrefix + role},
		// No default policy: see setupAppRole.
		"token_no_default_policy": true,
		"token_ttl":               StaffTokenTTL.String(),
		"token_max_ttl":           StaffTokenMaxTTL.String(),
		"token_type":              "service",
	}); err != nil {
		return Enrolment{}, translate(err, "create user")
	}
	entityID, err := o.ensureEntity(ctx, name, role, acc)
	if err != nil {
		return Enrolment{}, err
	}
	s, err := o.api.Logical().WriteWithContext(ctx, "identity/mfa/method/totp/admin-generate", map[string]any{
		"method_id": methodID, "entity_id": entityID,
	})
	if err != nil {
		return Enrolment{}, translate(err, "enrol totp")
	}
	url, _ := s.Data["url"].(string)
	if url == "" {
		return Enrolment{}, fmt.Errorf("vault enrolled no TOTP secret for %q (warnings: %v)", name, s.Warnings)
	}
	return Enrolment{TOTPURL: url}, nil
}

func (o *Operator) ensureEntity(ctx context.Context, name, role, accessor string) (string, error) {
	if _, err := o.api.Logical().WriteWithContext(ctx, "identity/entity/name/"+name, map[string]any{
		"metadata": map[string]string{"piivault_role": role, "piivault_created": time.Now().UTC().Format(time.RFC3339)},
		"disabled": false,
	}); err != nil {
		return "", translate(err, "write entity")
	}
	s, err := o.api.Logical().ReadWithContext(ctx, "identity/entity/name/"+name)
	if err != nil || s == nil {
		return "", fmt.Errorf("read entity: %w", translate(err, "read entity"))
	}
	id, _ := s.Data["id"].(string)
	aliases, _ := s.Data["aliases"].([]any)
	for _, a := range aliases {
		m, _ := a.(map[string]any)
		if m["mount_accessor"] == accessor {
			return id, nil
		}
	}
	if _, err := o.api.Logical().WriteWithContext(ctx, "identity/entity-alias", map[string]any{
		"name": name, "canonical_id": id, "mount_accessor": accessor,
	}); err != nil {
		return "", translate(err, "create entity alias")
	}
	return id, nil
}

// RemoveStaff ends a staff member's access at once: the entity is disabled
// first (Vault refuses every token of a disabled entity on its next use),
// every token issued by the user's login path is revoked, then the user and
// entity are deleted. Removing an unknown name is NotFound.
func (o *Operator) RemoveStaff(ctx context.Context, name string) error {
	userPath := "auth/" + UserpassMount + "/users/" + name
	s, err := o.api.Logical().ReadWithContext(ctx, userPath)
	if err != nil && !isNotFoundErr(err) {
		return translate(err, "read user")
	}
	if s == nil {
		return apperr.New(apperr.NotFound, "no staff member %q", name)
	}
	entityPath := "identity/entity/name/" + name
	if e, err := o.api.Logical().ReadWithContext(ctx, entityPath); err == nil && e != nil {
		if _, err := o.api.Logical().WriteWithContext(ctx, entityPath, map[string]any{"disabled": true}); err != nil {
			return translate(err, "disable entity")
		}
	}
	if _, err := o.api.Logical().WriteWithContext(ctx,
		"sys/leases/revoke-prefix/auth/"+UserpassMount+"/login/"+name, nil); err != nil {
		return translate(err, "revoke tokens")
	}
	if _, err := o.api.Logical().DeleteWithContext(ctx, userPath); err != nil {
		return translate(err, "delete user")
	}
	if _, err := o.api.Logical().DeleteWithContext(ctx, entityPath); err != nil && !isNotFoundErr(err) {
		return translate(err, "delete entity")
	}
	return nil
}

// ListStaff lists the staff accounts, sorted by name, with when each
// was created.
func (o *Operator) ListStaff(ctx context.Context) ([]StaffMember, error) {
	return listStaff(ctx, o.api, true)
}

// UnlockStaff lifts Vault's userpass lockout of a member (left from before
// setup switched the lockout off, or switched back on by hand). Unlocking a
// member who is not locked is not an error.
func (o *Operator) UnlockStaff(ctx context.Context, name string) error {
	acc, err := o.mountAccessor(ctx, UserpassMount)
	if err != nil {
		return err
	}
	if _, err := o.api.Logical().WriteWithContext(ctx, "sys/locked-users/"+acc+"/unlock/"+name, nil); err != nil {
		return translate(err, "unlock user")
	}
	return nil
}

// LockedStaff lists the members Vault's userpass lockout holds now.
func (o *Operator) LockedStaff(ctx context.Context) ([]string, error) {
	acc, err := o.mountAccessor(ctx, UserpassMount)
	if err != nil {
		return nil, err
	}
	s, err := o.api.Logical().ReadWithContext(ctx, "sys/locked-users")
	if err != nil {
		return nil, translate(err, "list locked users")
	}
	var out []string
	if s == nil {
		return out, nil
	}
	byNS, _ := s.Data["by_namespace"].([]any)
	for _, ns := range byNS {
		m, _ := ns.(map[string]any)
		accs, _ := m["mount_accessors"].([]any)
		for _, a := range accs {
			am, _ := a.(map[string]any)
			if am["mount_accessor"] != acc {
				continue
			}
			ids, _ := am["alias_identifiers"].([]any)
			for _, id := range ids {
				if s, ok := id.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
