/** Realistic event data for notification tests. */
import type { EventCatalog, EventType } from "../../lib/events/catalog.ts";

const user = { userId: "u1", email: "ada@example.com", name: "Ada" };
const subscription = { subscriptionId: "sub_1", userId: "u1", planId: "pro", status: "trialing" as const, trialEnd: "2026-12-01T00:00:00.000Z", currentPeriodEnd: "2026-12-01T00:00:00.000Z", cancelAtPeriodEnd: false };
const creditNote = { creditNoteId: "cn_1", number: "CN-2026-000001", invoiceId: "in_1", invoiceNumber: "2026-000042", userId: "u1", currency: "eur", amount: 1_500, reason: "product_unsatisfactory" as const, issuedAt: "2026-11-25T12:00:00.000Z" };
const invoice = { invoiceId: "in_1", number: "INV-7", userId: "u1", status: "open" as const, currency: "usd", total: 1999, nextPaymentAttempt: "2026-12-03T00:00:00.000Z" };

/** One realistic `data` per event type of the catalog. */
export const SAMPLE_DATA: { [K in EventType]: EventCatalog[K] } = {
	"user.created": user,
	"user.email_verification_requested": { ...user, verifyUrl: "https://app.example.com/verify?token=abc", expiresAt: "2026-11-26T12:00:00.000Z" },
	"user.email_verified": { ...user, verifiedAt: "2026-11-25T12:00:00.000Z" },
	"user.email_change_requested": { ...user, newEmail: "ada@new.example.com", confirmUrl: "https://app.example.com/verify-email?token=chg", expiresAt: "2026-11-26T12:00:00.000Z" },
	"user.email_changed": { ...user, email: "ada@new.example.com", previousEmail: "ada@example.com", changedAt: "2026-11-25T12:00:00.000Z", revertUrl: "https://app.example.com/revert-email?token=rev" },
	"user.updated": { ...user, name: "Ada Lovelace", updatedAt: "2026-11-25T12:00:00.000Z" },
	"user.mfa_enabled": { ...user, at: "2026-11-25T12:00:00.000Z" },
	"user.mfa_disabled": { ...user, at: "2026-11-25T12:00:00.000Z", by: "user" },
	"user.mfa_recovery_codes_regenerated": { ...user, at: "2026-11-25T12:00:00.000Z" },
	"user.passkey_added": { ...user, passkeyName: "MacBook", at: "2026-11-25T12:00:00.000Z" },
	"user.passkey_removed": { ...user, passkeyName: "MacBook", at: "2026-11-25T12:00:00.000Z" },
	"user.passkey_disabled": { ...user, passkeyName: "YubiKey", at: "2026-11-25T12:00:00.000Z" },
	"user.mfa_locked": { ...user, at: "2026-11-25T12:00:00.000Z", lockedUntil: "2026-11-25T12:15:00.000Z" },
	"user.password_reset_requested": { ...user, resetUrl: "https://app.example.com/reset?token=xyz", expiresAt: "2026-11-25T13:00:00.000Z" },
	"user.password_changed": { ...user, changedAt: "2026-11-25T12:00:00.000Z", method: "change" },
	"user.deleted": { userId: "u1" },
	"subscription.created": subscription,
	"subscription.updated": { ...subscription, status: "active", cancelAtPeriodEnd: true },
	"subscription.canceled": { ...subscription, status: "canceled" },
	"subscription.trial_will_end": subscription,
	"trial.ended": subscription,
	"invoice.created": invoice,
	"invoice.paid": { ...invoice, status: "paid" },
	"invoice.payment_failed": invoice,
	"credit_note.issued": creditNote,
	"credit_note.refund_failed": { ...creditNote, failureReason: "expired_or_canceled_card" },
};
