// Package inbound reads privacy requests that customers send by email: it
// parses the inbound-email webhooks of Postmark and SendGrid into a Message,
// checks with DKIM that the message really comes from its From: domain,
// and classifies what it asks for (deletion, access or correction).
//
// A Message holds PII (the sender's address, the body): its String and
// LogValue are redacted, and nothing here logs.
package inbound
