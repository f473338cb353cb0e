/**
 * Money is an integer number of the currency's minor unit (cents for USD, yen for JPY) with a
 * lowercase ISO 4217 code, as in Stripe's API. Never a float: products and ratios go through
 * BigInt with explicit half-up rounding, and formatting builds a decimal string from the integer.
 */
import { minorUnitDigits } from "../../lib/currencies.ts";
import { AppError } from "../../lib/errors.ts";

export const CURRENCY_PATTERN = /^[a-z]{3}$/;
/** Largest amount we accept anywhere: Stripe's own limit is 99,999,999 of the minor unit per charge. */
export const MAX_AMOUNT = 1_000_000_000_000;


/** Throws unless `amount` is a safe integer (a minor-unit amount). */
export function assertMinor(amount: number, what = "amount"): number {
	if (!Number.isSafeInteger(amount)) throw new AppError(500, "MONEY_NOT_INTEGER", `${what} must be an integer number of minor units, got ${amount}`);
	return amount;
}

/** round(a * b / c), half away from zero, exact for any safe integers. */
export function mulDiv(a: number, b: number, c: number): number {
	assertMinor(a, "a");
	assertMinor(b, "b");
	assertMinor(c, "c");
	if (c === 0) throw new AppError(500, "DIVISION_BY_ZERO", "mulDiv by zero");
	const num = BigInt(a) * BigInt(b);
	const den = BigInt(c);
	const negative = num < 0n !== den < 0n;
	const n = num < 0n ? -num : num;
	const d = den < 0n ? -den : den;
	const q = (2n * n + d) / (2n * d);
	return Number(negative ? -q : q);
}

/** `amount` times a rate in basis points (1/100 of a percent), rounded half up. */
export function applyBps(amount: number, bps: number): number {
	return mulDiv(amount, bps, 10_000);
}

export function sumMinor(amounts: number[]): number {
	return assertMinor(amounts.reduce((a, b) => a + b, 0), "sum");
}

/** The exact decimal string of a minor-unit amount: (1234, "usd") -> "12.34". */
export function toDecimalString(amount: number, currency: string): string {
	assertMinor(amount);
	const digits = minorUnitDigits(currency);
	const sign = amount < 0 ? "-" : "";
	const abs = String(Math.abs(amount)).padStart(digits + 1, "0");
	return digits === 0 ? sign + abs : `${sign}${abs.slice(0, -digits)}.${abs.slice(-digits)}`;
}

/** Human formatting for invoices: (123456, "usd") -> "$1,234.56". Intl reads the decimal string exactly. */
export function formatMoney(amount: number, currency: string, locale = "en-US"): string {
	const format = new Intl.NumberFormat(locale, { style: "currency", currency: currency.toUpperCase(), minimumFractionDigits: minorUnitDigits(currency) });
	// A decimal string is formatted exactly (Intl.NumberFormat v3), no float on the way.
	return format.format(toDecimalString(amount, currency) as unknown as number);
}
