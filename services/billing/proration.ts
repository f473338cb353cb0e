/**
 * Proration of a plan change in the middle of a billing period, as Stripe computes it: to the
 * second, a credit for the unused time of the old price and a charge for the remaining time of
 * the new one, each rounded half up to the minor unit. When the interval changes (monthly to
 * yearly), the billing cycle restarts at the change: credit for the unused old time, the full
 * new price for a new period. Pure integer arithmetic.
 */
import { assertMinor, mulDiv } from "./money.ts";

export interface ProrationInput {
	/** Period amounts (minor units) of the old and the new price at their quantities. */
	oldAmount: number;
	newAmount: number;
	periodStart: Date;
	periodEnd: Date;
	/** The moment of the change; clamped into the period. */
	at: Date;
	/** Set when the interval changes: the new price starts a new period at `at`, ending here. */
	newPeriodEnd?: Date;
}

export interface ProrationLine {
	kind: "credit" | "charge";
	/** Negative for a credit. */
	amount: number;
	periodStart: Date;
	periodEnd: Date;
}

export interface Proration {
	credit: number;
	charge: number;
	/** charge - credit: positive is owed by the customer, negative is a credit to them. */
	net: number;
	remainingSeconds: number;
	periodSeconds: number;
	lines: ProrationLine[];
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

export function prorate(input: ProrationInput): Proration {
	assertMinor(input.oldAmount, "oldAmount");
	assertMinor(input.newAmount, "newAmount");
	const start = seconds(input.periodStart);
	const end = seconds(input.periodEnd);
	if (end <= start) throw new RangeError("the period must end after it starts");
	const at = Math.min(Math.max(seconds(input.at), start), end);
	const periodSeconds = end - start;
	const remainingSeconds = end - at;
	const changeAt = new Date(at * 1000);

	const credit = mulDiv(input.oldAmount, remainingSeconds, periodSeconds);
	const charge = input.newPeriodEnd ? input.newAmount : mulDiv(input.newAmount, remainingSeconds, periodSeconds);
	const lines: ProrationLine[] = [];
	if (credit !== 0) lines.push({ kind: "credit", amount: -credit, periodStart: changeAt, periodEnd: input.periodEnd });
	if (charge !== 0) lines.push({ kind: "charge", amount: charge, periodStart: changeAt, periodEnd: input.newPeriodEnd ?? input.periodEnd });
	return { credit, charge, net: charge - credit, remainingSeconds, periodSeconds, lines };
}
