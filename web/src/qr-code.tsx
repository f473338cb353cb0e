/**
 * A QR code drawn as SVG elements (no markup injected), for an authenticator app to scan the
 * otpauth:// link. Error correction M, as authenticator set-up pages use.
 */
import { encode } from "uqr";

export function QrCode({ text, label, size = 200 }: { text: string; label: string; size?: number }) {
	const qr = encode(text, { ecc: "M", border: 2 });
	// One path of unit squares, one per dark module.
	const path = qr.data.flatMap((row, y) => row.flatMap((dark, x) => (dark ? [`M${x} ${y}h1v1h-1z`] : []))).join("");
	return (
		<svg role="img" aria-label={label} data-testid="totp-qr" viewBox={`0 0 ${qr.size} ${qr.size}`} width={size} height={size} shape-rendering="crispEdges" xmlns="http://www.w3.org/2000/svg">
			<rect width={qr.size} height={qr.size} fill="#fff" />
			<path d={path} fill="#000" />
		</svg>
	);
}
