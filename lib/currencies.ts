/**
 * How many digits a currency's minor unit has (Stripe's zero- and three-decimal lists; 2 for the
 * rest). One table for the server and the web console, which must agree on what "12.50" means:
 * the browser's Intl differs for some (HUF, IDR, ISK, IQD: 0; LYD: 3).
 */
const ZERO_DECIMAL = new Set(["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]);
const THREE_DECIMAL = new Set(["bhd", "jod", "kwd", "omr", "tnd"]);

export function minorUnitDigits(currency: string): number {
	const code = currency.toLowerCase();
	if (ZERO_DECIMAL.has(code)) return 0;
	if (THREE_DECIMAL.has(code)) return 3;
	return 2;
}
