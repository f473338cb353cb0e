/**
 * Workflows: which event becomes which notification, on which channels, in which category.
 * Declared here as data (as Novu and Knock declare theirs), so what a user receives for an event
 * is read in one table; the texts live in the locale catalogs (locales/<lang>.json) under the
 * workflow's id.
 */
import type { CreditNoteData, CreditNoteRefundFailed, PasskeyChanged, EmailChanged, EmailChangeRequested, EmailVerificationRequested, EventCatalog, MfaChanged, MfaDisabled, MfaLocked, EventType, InvoiceData, PasswordChanged, PasswordResetRequested, SubscriptionData, UserRef } from "../../lib/events/catalog.ts";

export const CHANNELS = ["email", "push", "in_app"] as const;
export type Channel = (typeof CHANNELS)[number];

export const CATEGORIES = ["security", "account", "billing"] as const;
export type Category = (typeof CATEGORIES)[number];

/** Categories a user cannot switch off: they carry what keeps an account safe. */
export const LOCKED_CATEGORIES: ReadonlySet<Category> = new Set(["security"]);

export type PushUrgency = "very-low" | "low" | "normal" | "high";

export interface Recipient {
	userId: string;
	/** From the event when it carries one; otherwise the contact record is used at send time. */
	email?: string;
	name?: string | null;
}

export interface Workflow<E extends EventType = EventType> {
	/** Also the message id in the locale catalogs. */
	id: string;
	event: E;
	category: Category;
	channels: readonly Channel[];
	recipient(data: EventCatalog[E]): Recipient;
	/** Template variables; links are built from the public URL. */
	variables(data: EventCatalog[E], publicUrl: string): Record<string, unknown>;
	/** How long a push service keeps an undelivered message, and how urgent it is. */
	push?: { ttlSeconds: number; urgency: PushUrgency };
}

/** Thrown when an event's data cannot make a notification (a bad link); it is dead-lettered. */
export class InvalidEventDataError extends Error {
	constructor(message: string) {
		super(message);
		this.name = "InvalidEventDataError";
	}
}

/** `base` joined with encoded path segments: link("https://x.io/app", "billing") -> https://x.io/app/billing */
export function link(base: string, ...segments: string[]): string {
	const root = base.replace(/\/+$/, "");
	return segments.length ? `${root}/${segments.map(encodeURIComponent).join("/")}` : `${root}/`;
}

/** A link taken from an event must be an absolute http(s) URL: nothing else goes into an e-mail. */
export function checkedLink(value: string, field: string): string {
	let url: URL;
	try {
		url = new URL(value);
	} catch {
		throw new InvalidEventDataError(`${field} is not a URL`);
	}
	if (url.protocol !== "https:" && url.protocol !== "http:") throw new InvalidEventDataError(`${field} must be an http(s) URL`);
	return url.toString();
}

const fromUser = (d: UserRef): Recipient => ({ userId: d.userId, email: d.email, name: d.name });
const byUserId = (d: { userId: string }): Recipient => ({ userId: d.userId });

const DAY = 86_400;
const subscriptionVars = (d: SubscriptionData, publicUrl: string) => ({
	planId: d.planId,
	status: d.status,
	trialEnd: d.trialEnd,
	currentPeriodEnd: d.currentPeriodEnd,
	cancelAtPeriodEnd: d.cancelAtPeriodEnd,
	actionUrl: link(publicUrl, "billing"),
});
/** A two-step login notice: when, and a password reset as the way out if it was not the user. */
const mfaNotice = (d: MfaChanged, publicUrl: string) => ({ name: d.name, at: d.at, actionUrl: link(publicUrl, "password", "forgot") });
const passkeyNotice = (d: PasskeyChanged, publicUrl: string) => ({ ...mfaNotice(d, publicUrl), passkeyName: d.passkeyName });
/** The way out is on the account page (remove the passkey), not a password reset. */
const passkeyReview = (d: PasskeyChanged, publicUrl: string) => ({ ...passkeyNotice(d, publicUrl), actionUrl: link(publicUrl) });
const invoiceVars = (d: InvoiceData, publicUrl: string) => ({
	invoiceNumber: d.number,
	total: d.total,
	currency: d.currency,
	nextPaymentAttempt: d.nextPaymentAttempt ?? null,
	actionUrl: link(publicUrl, "billing", "invoices", d.invoiceId),
});
const creditNoteVars = (d: CreditNoteData, publicUrl: string) => ({
	creditNoteNumber: d.number,
	invoiceNumber: d.invoiceNumber ?? d.invoiceId,
	amount: d.amount,
	currency: d.currency,
	actionUrl: link(publicUrl, "billing", "invoices", d.invoiceId),
});

/** Types each workflow's callbacks by its event's data. */
function define<E extends EventType>(workflow: Workflow<E>): Workflow {
	return workflow;
}

export const WORKFLOWS: readonly Workflow[] = [
	define({
		id: "welcome",
		event: "user.created",
		category: "account",
		channels: ["email", "in_app"],
		recipient: fromUser,
		variables: (d, publicUrl) => ({ name: d.name, actionUrl: link(publicUrl) }),
	}),
	define({
		id: "verify-email",
		event: "user.email_verification_requested",
		category: "security",
		channels: ["email"],
		recipient: fromUser,
		variables: (d: EmailVerificationRequested) => ({ name: d.name, actionUrl: checkedLink(d.verifyUrl, "verifyUrl"), expiresAt: d.expiresAt }),
	}),
	define({
		id: "email-verified",
		event: "user.email_verified",
		category: "account",
		channels: ["in_app"],
		recipient: fromUser,
		variables: (d, publicUrl) => ({ name: d.name, email: d.email, actionUrl: link(publicUrl, "account") }),
	}),
	define({
		id: "confirm-new-email",
		event: "user.email_change_requested",
		category: "security",
		channels: ["email"],
		// To the new address: following the link proves the user receives mail there.
		recipient: (d: EmailChangeRequested) => ({ userId: d.userId, email: d.newEmail, name: d.name }),
		variables: (d: EmailChangeRequested) => ({ name: d.name, newEmail: d.newEmail, actionUrl: checkedLink(d.confirmUrl, "confirmUrl"), expiresAt: d.expiresAt }),
	}),
	define({
		id: "email-changed",
		event: "user.email_changed",
		category: "security",
		channels: ["email", "push", "in_app"],
		// The e-mail goes to the address the account left: its owner must learn of the move. When that
		// address was never verified (it may not be the user's), it names neither the new address nor a way back.
		recipient: (d: EmailChanged) => ({ userId: d.userId, email: d.previousEmail, name: d.name }),
		// The e-mail's button undoes the move (the account's owner taking it back); without one, a reset.
		variables: (d: EmailChanged, publicUrl) => ({ name: d.name, email: d.email, previousEmail: d.previousEmail, previousUnverified: d.previousEmailVerified === false, changedAt: d.changedAt, canRevert: Boolean(d.revertUrl), actionUrl: d.revertUrl ? checkedLink(d.revertUrl, "revertUrl") : link(publicUrl, "password", "forgot") }),
		push: { ttlSeconds: DAY, urgency: "high" },
	}),
	define({
		id: "mfa-enabled",
		event: "user.mfa_enabled",
		category: "security",
		channels: ["email", "in_app"],
		recipient: fromUser,
		variables: mfaNotice,
	}),
	define({
		id: "mfa-disabled",
		event: "user.mfa_disabled",
		category: "security",
		channels: ["email", "push", "in_app"],
		recipient: fromUser,
		variables: (d: MfaDisabled, publicUrl) => ({ ...mfaNotice(d, publicUrl), byAdministrator: d.by === "administrator", passkeysRemoved: d.passkeysRemoved ?? 0 }),
		push: { ttlSeconds: DAY, urgency: "high" },
	}),
	define({
		id: "mfa-recovery-codes",
		event: "user.mfa_recovery_codes_regenerated",
		category: "security",
		channels: ["email", "in_app"],
		recipient: fromUser,
		variables: mfaNotice,
	}),
	define({
		id: "mfa-locked",
		event: "user.mfa_locked",
		category: "security",
		channels: ["email", "push", "in_app"],
		// Whoever typed the wrong codes had the password: its owner should change it.
		recipient: fromUser,
		variables: (d: MfaLocked, publicUrl) => ({ ...mfaNotice(d, publicUrl), lockedUntil: d.lockedUntil }),
		push: { ttlSeconds: DAY, urgency: "high" },
	}),
	define({
		id: "passkey-added",
		event: "user.passkey_added",
		category: "security",
		channels: ["email", "in_app"],
		recipient: fromUser,
		variables: passkeyReview,
	}),
	define({
		id: "passkey-removed",
		event: "user.passkey_removed",
		category: "security",
		channels: ["email", "in_app"],
		recipient: fromUser,
		variables: passkeyNotice,
	}),
	define({
		id: "passkey-disabled",
		event: "user.passkey_disabled",
		category: "security",
		channels: ["email", "push", "in_app"],
		// A copy of the key exists: someone may hold it, and the password may be next.
		recipient: fromUser,
		variables: passkeyReview,
		push: { ttlSeconds: DAY, urgency: "high" },
	}),
	define({
		id: "password-reset",
		event: "user.password_reset_requested",
		category: "security",
		channels: ["email"],
		recipient: fromUser,
		variables: (d: PasswordResetRequested) => ({ name: d.name, actionUrl: checkedLink(d.resetUrl, "resetUrl"), expiresAt: d.expiresAt }),
	}),
	define({
		id: "password-changed",
		event: "user.password_changed",
		category: "security",
		channels: ["email", "push", "in_app"],
		recipient: fromUser,
		variables: (d: PasswordChanged, publicUrl) => ({ name: d.name, changedAt: d.changedAt, method: d.method, actionUrl: link(publicUrl, "password", "forgot") }),
		push: { ttlSeconds: DAY, urgency: "high" },
	}),
	define({
		id: "subscription-started",
		event: "subscription.created",
		category: "billing",
		channels: ["in_app"],
		recipient: byUserId,
		variables: subscriptionVars,
	}),
	define({
		id: "subscription-updated",
		event: "subscription.updated",
		category: "billing",
		channels: ["in_app"],
		recipient: byUserId,
		variables: subscriptionVars,
	}),
	define({
		id: "subscription-canceled",
		event: "subscription.canceled",
		category: "billing",
		channels: ["push", "in_app"],
		recipient: byUserId,
		variables: subscriptionVars,
		push: { ttlSeconds: DAY, urgency: "normal" },
	}),
	define({
		id: "trial-ending",
		event: "subscription.trial_will_end",
		category: "billing",
		channels: ["email", "push", "in_app"],
		recipient: byUserId,
		variables: subscriptionVars,
		push: { ttlSeconds: 2 * DAY, urgency: "normal" },
	}),
	define({
		id: "trial-ended",
		event: "trial.ended",
		category: "billing",
		channels: ["email", "push", "in_app"],
		recipient: byUserId,
		variables: subscriptionVars,
		push: { ttlSeconds: 2 * DAY, urgency: "normal" },
	}),
	define({
		id: "invoice-created",
		event: "invoice.created",
		category: "billing",
		channels: ["in_app"],
		recipient: byUserId,
		variables: invoiceVars,
	}),
	define({
		id: "invoice-paid",
		event: "invoice.paid",
		category: "billing",
		channels: ["email", "in_app"],
		recipient: byUserId,
		variables: invoiceVars,
	}),
	define({
		id: "credit-note-issued",
		event: "credit_note.issued",
		category: "billing",
		channels: ["email", "in_app"],
		recipient: byUserId,
		variables: creditNoteVars,
	}),
	define({
		id: "credit-note-refund-failed",
		event: "credit_note.refund_failed",
		category: "billing",
		channels: ["email", "in_app"],
		recipient: byUserId,
		variables: (d: CreditNoteRefundFailed, publicUrl) => ({ ...creditNoteVars(d, publicUrl), failureReason: d.failureReason }),
	}),
	define({
		id: "payment-failed",
		event: "invoice.payment_failed",
		category: "billing",
		channels: ["email", "push", "in_app"],
		recipient: byUserId,
		variables: (d: InvoiceData, publicUrl) => ({ ...invoiceVars(d, publicUrl), actionUrl: link(publicUrl, "billing") }),
		push: { ttlSeconds: 2 * DAY, urgency: "high" },
	}),
];

const byEvent = new Map<string, Workflow>(WORKFLOWS.map((w) => [w.event, w]));

export function workflowFor(eventType: string): Workflow | undefined {
	return byEvent.get(eventType);
}

export function workflowById(id: string): Workflow | undefined {
	return WORKFLOWS.find((w) => w.id === id);
}

/** Channel switches of one user: `enabled(category, channel)` answers for unlocked categories. */
export interface ChannelSwitch {
	enabled(category: Category, channel: Channel): boolean;
}

/** The channels a workflow delivers on for this user: all of them for a locked category. */
export function plannedChannels(workflow: Workflow, prefs: ChannelSwitch): Channel[] {
	if (LOCKED_CATEGORIES.has(workflow.category)) return [...workflow.channels];
	return workflow.channels.filter((channel) => prefs.enabled(workflow.category, channel));
}
