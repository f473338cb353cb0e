/**
 * The event catalog: every durable event's type and the shape of its `data`.
 * The contract between publishers and consumers; documented in docs/events.md.
 * Money is always an integer amount of the currency's minor unit (cents) with an ISO 4217 code.
 */
export interface UserRef {
	userId: string;
	email: string;
	name: string | null;
}

export type UserCreated = UserRef;
export interface UserEmailVerified extends UserRef {
	verifiedAt: string;
}
export interface UserDeleted {
	userId: string;
}
export interface PasswordResetRequested extends UserRef {
	/** One-time link the e-mail carries; the token in it is single-use and expires. */
	resetUrl: string;
	expiresAt: string;
}
export interface PasswordChanged extends UserRef {
	changedAt: string;
	/** "reset" (via e-mailed link) or "change" (logged in, with the old password). */
	method: "reset" | "change";
}
export interface EmailVerificationRequested extends UserRef {
	verifyUrl: string;
	expiresAt: string;
}
/** The user asked to move the account to `newEmail`; `email` is still the account's address. */
export interface EmailChangeRequested extends UserRef {
	newEmail: string;
	/** One-time link the e-mail to `newEmail` carries; following it makes the change. */
	confirmUrl: string;
	expiresAt: string;
}
/** The account moved to `email` (verified by the link sent to it). */
export interface EmailChanged extends UserRef {
	previousEmail: string;
	/** The account had proven it received mail there (absent in events of earlier versions: treat as true). */
	previousEmailVerified?: boolean;
	changedAt: string;
	/** One-time link for `previousEmail` that moves the account back (null when this was such a move back). */
	revertUrl: string | null;
}
/** Two-step login was turned on or off, or its recovery codes were replaced (`at`: when). */
export interface MfaChanged extends UserRef {
	at: string;
}
/** Two-step login was turned off: by the user, or by an administrator for a user who lost every factor. */
export interface MfaDisabled extends MfaChanged {
	by: "user" | "administrator";
	/** Passkeys removed with it (an administrator's reset removes every factor). */
	passkeysRemoved?: number;
}
/** Wrong second-factor codes locked the account's second factor until `lockedUntil`: someone had the password. */
export interface MfaLocked extends MfaChanged {
	lockedUntil: string;
}
/** A passkey was added to the account, or removed from it: the user is told either way. */
export interface PasskeyChanged extends UserRef {
	/** The name the user gave it ("MacBook", "YubiKey"). */
	passkeyName: string;
	at: string;
}
/** The profile changed (today: the display name). */
export interface UserUpdated extends UserRef {
	updatedAt: string;
}

export interface SubscriptionData {
	subscriptionId: string;
	userId: string;
	planId: string;
	status: "trialing" | "active" | "past_due" | "canceled" | "unpaid" | "incomplete" | "paused";
	trialEnd: string | null;
	currentPeriodEnd: string | null;
	cancelAtPeriodEnd: boolean;
}

export interface InvoiceData {
	invoiceId: string;
	number: string;
	userId: string;
	status: "draft" | "open" | "paid" | "void" | "uncollectible";
	currency: string;
	/** Total in minor units. */
	total: number;
	/** Present for payment_failed: when the next attempt happens, if any. */
	nextPaymentAttempt?: string | null;
}

/** Money given back on a paid invoice (a credit note, refunded to the card that paid). */
export interface CreditNoteData {
	creditNoteId: string;
	/** "CN-2026-000007": numbered per year without gaps, like invoices. */
	number: string;
	invoiceId: string;
	invoiceNumber: string | null;
	userId: string;
	currency: string;
	/** Minor units. */
	amount: number;
	reason: "duplicate" | "fraudulent" | "order_change" | "product_unsatisfactory";
	issuedAt: string;
}

/** An issued note whose refund failed afterwards (the card closed, the bank returned the money). */
export interface CreditNoteRefundFailed extends CreditNoteData {
	/** Stripe's `failure_reason` (`expired_or_canceled_card`, `lost_or_stolen_card`, `declined`, ...), or `canceled`. */
	failureReason: string;
}

export interface EventCatalog {
	"user.created": UserCreated;
	"user.email_verification_requested": EmailVerificationRequested;
	"user.email_verified": UserEmailVerified;
	"user.email_change_requested": EmailChangeRequested;
	"user.email_changed": EmailChanged;
	"user.updated": UserUpdated;
	"user.mfa_enabled": MfaChanged;
	"user.mfa_disabled": MfaDisabled;
	"user.mfa_recovery_codes_regenerated": MfaChanged;
	"user.mfa_locked": MfaLocked;
	"user.passkey_added": PasskeyChanged;
	"user.passkey_removed": PasskeyChanged;
	"user.passkey_disabled": PasskeyChanged;
	"user.password_reset_requested": PasswordResetRequested;
	"user.password_changed": PasswordChanged;
	"user.deleted": UserDeleted;
	"subscription.created": SubscriptionData;
	"subscription.updated": SubscriptionData;
	"subscription.canceled": SubscriptionData;
	"subscription.trial_will_end": SubscriptionData;
	"trial.ended": SubscriptionData;
	"invoice.created": InvoiceData;
	"invoice.paid": InvoiceData;
	"invoice.payment_failed": InvoiceData;
	"credit_note.issued": CreditNoteData;
	"credit_note.refund_failed": CreditNoteRefundFailed;
}

export type EventType = keyof EventCatalog;
