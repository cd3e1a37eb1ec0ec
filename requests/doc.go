// Package requests owns the privacy requests customers send by email to the
// merchant's privacy address, forwarded by Postmark (inbound webhook JSON)
// or SendGrid (Inbound Parse, raw MIME), and the queue of those that wait
// for a person.
//
// A request acts at once only when everything about it is proven: a DKIM
// signature aligned with its From: domain passes (inbound.Verifier), it asks
// for a deletion or for access (inbound.Classify), the address has orders,
// and email is configured so that the customer hears what was done. A
// deletion runs through the same path as POST /v1/deletion-requests and the
// customer gets a receipt by email; an access request makes the access
// report and mails a link to /privacy/, never the data. Everything else is
// kept as a pending request that support confirms (runs it) or rejects
// (closes it); either way the record is deleted.
//
// Redis keys share one hash tag, so a cluster keeps them in one slot and a
// script may touch them together. Every key has a TTL of at most
// Config.Retention:
//
//	piivault:{inbound}:req:<id>        hash    a pending request: sender (the Sealer's ciphertext of the
//	                                           address), masked (the masked address), dkim, kind, reason,
//	                                           provider, received (unix ms), excerpt (Vault transit
//	                                           ciphertext under the masked-copy key of the body's first
//	                                           500 characters, associated data = the id), status
//	                                           ("pending", or "processing" while being confirmed or
//	                                           rejected) and claimed (unix ms); TTL Retention from receipt
//	piivault:{inbound}:pending         zset    ids of pending requests scored by received (unix ms);
//	                                           TTL Retention, renewed on every write
//	piivault:{inbound}:seen:<sha256>   string  "processing" (a lease) then "done" for one inbound
//	                                           message: a repeat does nothing; 7 days, or Retention
//	                                           if shorter
//
// The sender's address, the subject and the body are never in Redis in the
// clear, never logged and never in the audit trail, whose entries name the
// actor "customer:email" (or the staff member) and request ids only. Ids
// ("pr_" and 24 hex digits) name a request, never a person.
package requests
