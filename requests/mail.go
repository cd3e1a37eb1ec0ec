package requests

import (
	"context"
	"fmt"
	"strings"
	"time"

	"piivault/mail"
	"piivault/purge"
)

// runDeletion purges every order of email through the Deleter (the path of
// POST /v1/deletion-requests) and queues the receipt when email is on.
// mailed is false when the receipt could not be queued: the deletion is
// done and is not undone or repeated for it.
func (s *Service) runDeletion(ctx context.Context, actor, ip, email string) (r purge.Receipt, mailed bool, err error) {
	r, err = s.deleter.Request(ctx, actor, ip, email)
	if err != nil {
		return purge.Receipt{}, false, err
	}
	if s.mailer == nil {
		return r, false, nil
	}
	if err := s.mailer.Enqueue(ctx, receiptMessage(email, r)); err != nil {
		s.log.Error("deletion receipt not queued", "deletion_request", r.RequestID, "err", err)
		return r, false, nil
	}
	return r, true, nil
}

// runAccess makes the access report and, when email is on, mails the link
// to /privacy/, where the customer signs in with a code sent to the same
// address. The data itself never goes by email.
func (s *Service) runAccess(ctx context.Context, actor, ip, email string) (reportID string, mailed bool, err error) {
	reportID, err = s.reporter.AccessReport(ctx, actor, ip, email)
	if err != nil {
		return "", false, err
	}
	if s.mailer == nil || s.cfg.PublicURL == "" {
		return reportID, false, nil
	}
	if err := s.mailer.Enqueue(ctx, accessMessage(email, s.cfg.PublicURL+"/privacy/", reportID)); err != nil {
		s.log.Error("access link not queued", "report_id", reportID, "err", err)
		return reportID, false, nil
	}
	return reportID, true, nil
}

// receiptMessage tells the customer which orders were purged and when. It
// names order ids only: no address, no name.
func receiptMessage(to string, r purge.Receipt) mail.Message {
	var b strings.Builder
	b.WriteString("Hello,\n\nwe have carried out your request to delete your personal data.\n\n")
	if len(r.Orders) == 0 {
		b.WriteString("We held no shipping data for any of your orders any more.\n")
	} else {
		fmt.Fprintf(&b, "The shipping data (name, address, email and phone) of these orders was destroyed on %s:\n",
			r.CompletedAt.UTC().Format(time.RFC1123))
		for _, id := range r.Orders {
			b.WriteString("  - " + id + "\n")
		}
	}
	b.WriteString("\nNothing else about you is kept: what remains of an order is a purchase reference " +
		"without personal data.\n\nReference: " + r.RequestID + "\n")
	return mail.Message{ID: "inbound-receipt-" + r.RequestID, To: to, Subject: "Your data has been deleted", Text: b.String()}
}

// accessMessage sends the link to the privacy page, never the data.
func accessMessage(to, link, reportID string) mail.Message {
	text := "Hello,\n\nwe have received your request to see the personal data we hold about you.\n\n" +
		"For your safety we do not send personal data by email. You can see your orders, what we hold " +
		"and who looked at it here:\n\n  " + link + "\n\nSign in with this email address; we send a one-time " +
		"code to it.\n\nReference: " + reportID + "\n"
	return mail.Message{ID: "inbound-access-" + reportID, To: to, Subject: "Your request for your data", Text: text}
}
