// Package mail sends piivault's own emails (receipts of what customers asked
// of their data) through an SMTP relay. Sender speaks SMTP; Outbox keeps
// messages in Redis until the relay has taken them, so that an HTTP answer
// never waits on SMTP and an SMTP outage loses nothing.
//
// The outbox's Redis keys share one hash tag, so a cluster keeps them in one
// slot and a script may touch them together. Every key has a TTL:
//
//	piivault:{mail}:seen:<id>  "1" while Enqueue of <id> is a no-op: 7 days from
//	                           enqueueing, renewed when the message is sent
//	piivault:{mail}:msg:<id>   hash of sealed (the Sealer's ciphertext of
//	                           recipient, subject and body), enqueued (unix ms)
//	                           and attempts; 7 days, deleted once sent
//	piivault:{mail}:queue      sorted set of ids scored by their next attempt
//	                           (unix ms); 7 days, renewed on every write
//
// Message ids appear in keys and logs: they name a message (such as
// "receipt:<request id>"), never a person.
package mail
