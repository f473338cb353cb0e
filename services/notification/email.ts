/**
 * E-mail over SMTP with nodemailer: a pooled transport (a few long-lived connections instead of
 * one per message), every wait bounded, and a failure sorted into "try again later" (connection
 * lost, 4xx) or "never" (5xx: the server refused this message for good).
 */
import nodemailer from "nodemailer";
import MailComposer from "nodemailer/lib/mail-composer";
import { PermanentDeliveryError } from "./queues.ts";

export interface OutgoingEmail {
	to: { address: string; name?: string | null };
	subject: string;
	html: string;
	text: string;
	/** Deterministic per job, so a receiving system can recognise a repeated message. */
	messageId: string;
	headers: Record<string, string>;
}

/** The part of a nodemailer transport this module uses; tests may pass any implementation. */
export interface MailTransport {
	sendMail(message: { envelope: { from: string; to: string[] }; raw: Buffer }): Promise<unknown>;
	verify(): Promise<unknown>;
	close(): void;
}

export interface SmtpOptions {
	/** Connections kept open to the SMTP server. */
	maxConnections: number;
}

export function createSmtpTransport(url: string, opts: SmtpOptions): MailTransport {
	return nodemailer.createTransport({
		url,
		pool: true,
		maxConnections: opts.maxConnections,
		maxMessages: 100,
		connectionTimeout: 5_000,
		greetingTimeout: 5_000,
		socketTimeout: 15_000,
	});
}

export async function sendEmail(transport: MailTransport, from: string, email: OutgoingEmail): Promise<string> {
	try {
		// Built whole first, then sent raw: the SMTP connection writes the message in one piece
		// instead of one socket write per MIME part and line (14 writes per e-mail -> 5).
		const message = new MailComposer({
			from,
			to: { address: email.to.address, name: email.to.name ?? "" },
			subject: email.subject,
			html: email.html,
			text: email.text,
			messageId: email.messageId,
			headers: { "Auto-Submitted": "auto-generated", ...email.headers },
		}).compile();
		// The envelope as nodemailer derives it from the headers (international domains in punycode).
		const { from: envelopeFrom, to } = message.getEnvelope();
		await transport.sendMail({ envelope: { from: envelopeFrom || from, to }, raw: await message.build() });
		return email.messageId;
	} catch (err) {
		// nodemailer marks 5xx replies (other than 503) as permanent: RFC 5321's "do not repeat".
		if ((err as { permanent?: boolean }).permanent === true) {
			const e = err as { responseCode?: number; message: string };
			throw new PermanentDeliveryError(`SMTP server refused the message (${e.responseCode ?? "5xx"}): ${e.message}`);
		}
		throw err;
	}
}

/** `<job-id@host-of-public-url>`: one Message-ID per delivery job. */
export function messageIdFor(jobId: string, publicUrl: string): string {
	return `<${jobId}@${new URL(publicUrl).hostname || "backplane.invalid"}>`;
}
