/**
 * Renders an invoice for people: HTML (for the web console and e-mails) and PDF (pdfkit, with
 * the standard Helvetica fonts, so no font files ship in the image). Amounts are formatted from
 * their integer minor units; nothing is recomputed here, the document's own totals are shown,
 * followed by the credit notes issued on it (money given back) and what remains paid.
 */
import { formatMoney } from "./money.ts";
import type { Invoice, Party } from "./invoices.ts";

const day = (d: Date | null) => (d ? d.toISOString().slice(0, 10) : "");

function period(start: Date | null, end: Date | null): string {
	return start && end ? `${day(start)} – ${day(end)}` : "";
}

/** Basis points as a percentage, integer arithmetic: 1925 -> "19.25%". */
const percent = (bps: number) => `${Math.floor(bps / 100)}.${String(bps % 100).padStart(2, "0")}%`;

/** A credit note issued on the invoice, as the documents show it. */
export interface Credit {
	number: string;
	amount: number;
	issuedAt: Date;
}

/** The summary rows under the line items, shared by both renderings. */
function summaryRows(inv: Invoice, credits: Credit[]): [string, string][] {
	const m = (n: number) => formatMoney(n, inv.currency);
	const rows: [string, string][] = [["Subtotal", m(inv.subtotal)]];
	if (inv.discount) rows.push(["Discount", m(-inv.discount)]);
	for (const t of inv.taxLines) rows.push([t.rateBps === null ? t.name : `${t.name} (${percent(t.rateBps)} of ${m(t.taxableAmount)})`, m(t.amount)]);
	rows.push(["Total", m(inv.total)], ["Amount paid", m(inv.amountPaid)], ["Amount due", m(inv.amountDue)]);
	if (credits.length) {
		for (const c of credits) rows.push([`Credit note ${c.number} (${day(c.issuedAt)}), refunded`, m(-c.amount)]);
		rows.push(["Paid after credits", m(inv.amountPaid - credits.reduce((sum, c) => sum + c.amount, 0))]);
	}
	return rows;
}

const title = (inv: Invoice) => `Invoice ${inv.number ?? "(draft)"}`;

function partyLines(p: Party): string[] {
	return [p.name, ...(p.address ? p.address.split(/\s*[\n;]\s*/) : []), p.email ?? "", p.taxId ? `Tax ID: ${p.taxId}` : ""].filter(Boolean);
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderInvoiceHtml(inv: Invoice, credits: Credit[] = []): string {
	const m = (n: number) => escapeHtml(formatMoney(n, inv.currency));
	const party = (label: string, p: Party) => `<div class="party"><h2>${label}</h2>${partyLines(p).map((l) => `<div>${escapeHtml(l)}</div>`).join("")}</div>`;
	const lines = inv.lines
		.map((l) => `<tr><td>${escapeHtml(l.description)}<div class="period">${escapeHtml(period(l.periodStart, l.periodEnd))}</div></td><td class="num">${l.quantity}</td><td class="num">${m(l.unitAmount)}</td><td class="num">${m(l.amount)}</td></tr>`)
		.join("");
	const summary = summaryRows(inv, credits)
		.map(([label, value]) => `<tr class="${label === "Total" ? "total" : ""}"><td colspan="3">${escapeHtml(label)}</td><td class="num">${escapeHtml(value)}</td></tr>`)
		.join("");
	return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title(inv))}</title>
<style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;color:#222}.parties{display:flex;justify-content:space-between}
table{width:100%;border-collapse:collapse;margin-top:2rem}td,th{padding:.4rem;border-bottom:1px solid #ddd;text-align:left}.num{text-align:right}
.period{color:#777;font-size:.85em}.total td{font-weight:bold}</style></head>
<body><h1>${escapeHtml(title(inv))}</h1>
<p>Status: ${escapeHtml(inv.status)} · Issued: ${day(inv.finalizedAt ?? inv.createdAt)}${inv.paidAt ? ` · Paid: ${day(inv.paidAt)}` : ""} · Currency: ${inv.currency.toUpperCase()}</p>
<div class="parties">${party("From", inv.seller)}${party("Bill to", inv.buyer)}</div>
<table><thead><tr><th>Description</th><th class="num">Qty</th><th class="num">Unit price</th><th class="num">Amount</th></tr></thead>
<tbody>${lines}</tbody><tfoot>${summary}</tfoot></table></body></html>
`;
}

export async function renderInvoicePdf(inv: Invoice, credits: Credit[] = []): Promise<Buffer> {
	// Loaded on first use: pdfkit and its fonts are tens of MB that an idle billing node does not need.
	const { default: PDFDocument } = await import("pdfkit");
	const doc = new PDFDocument({ size: "A4", margin: 50, info: { Title: title(inv), Author: inv.seller.name, CreationDate: inv.finalizedAt ?? inv.createdAt } });
	const chunks: Buffer[] = [];
	const done = new Promise<Buffer>((resolve, reject) => {
		doc.on("data", (c: Buffer) => chunks.push(c));
		doc.on("end", () => resolve(Buffer.concat(chunks)));
		doc.on("error", reject);
	});
	const m = (n: number) => formatMoney(n, inv.currency);
	const left = 50;
	const right = doc.page.width - 50;

	doc.font("Helvetica-Bold").fontSize(20).text(title(inv), left, 50);
	doc.font("Helvetica").fontSize(10).text(`Status: ${inv.status}   Issued: ${day(inv.finalizedAt ?? inv.createdAt)}${inv.paidAt ? `   Paid: ${day(inv.paidAt)}` : ""}   Currency: ${inv.currency.toUpperCase()}`);

	const partiesTop = 110;
	doc.font("Helvetica-Bold").text("From", left, partiesTop);
	doc.font("Helvetica").text(partyLines(inv.seller).join("\n"), left, partiesTop + 14, { width: 220 });
	doc.font("Helvetica-Bold").text("Bill to", 320, partiesTop);
	doc.font("Helvetica").text(partyLines(inv.buyer).join("\n"), 320, partiesTop + 14, { width: 220 });

	const cols = { description: left, quantity: 330, unit: 380, amount: 460 };
	let y = 220;
	const row = (cells: [string, string, string, string], bold = false) => {
		doc.font(bold ? "Helvetica-Bold" : "Helvetica").fontSize(10);
		const height = Math.max(doc.heightOfString(cells[0], { width: 270 }), 12);
		doc.text(cells[0], cols.description, y, { width: 270 });
		doc.text(cells[1], cols.quantity, y, { width: 40, align: "right" });
		doc.text(cells[2], cols.unit, y, { width: 75, align: "right" });
		doc.text(cells[3], cols.amount, y, { width: right - cols.amount, align: "right" });
		y += height + 6;
		if (y > doc.page.height - 80) {
			doc.addPage();
			y = 50;
		}
	};
	row(["Description", "Qty", "Unit price", "Amount"], true);
	doc.moveTo(left, y - 3).lineTo(right, y - 3).stroke();
	for (const l of inv.lines) {
		const when = period(l.periodStart, l.periodEnd);
		row([when ? `${l.description} (${when})` : l.description, String(l.quantity), m(l.unitAmount), m(l.amount)]);
	}
	doc.moveTo(left, y - 3).lineTo(right, y - 3).stroke();
	for (const [label, value] of summaryRows(inv, credits)) row([label, "", "", value], label === "Total");
	doc.end();
	return done;
}
