/**
 * Reads what reached the SMTP sink through Mailpit's API (https://mailpit.axllent.org/docs/api-v1/).
 * Tests use unique recipient addresses and delete what they created.
 */
import { infra } from "./infra.ts";

export interface MailSummary {
	ID: string;
	MessageID: string;
	Subject: string;
	To: { Name: string; Address: string }[];
	From: { Name: string; Address: string };
}

export interface MailMessage extends MailSummary {
	Text: string;
	HTML: string;
}

async function api<T>(path: string, init?: RequestInit): Promise<T> {
	const res = await fetch(`${infra.mailpitApiUrl}/api/v1${path}`, { ...init, signal: AbortSignal.timeout(5_000) });
	if (!res.ok) throw new Error(`Mailpit ${init?.method ?? "GET"} ${path}: ${res.status}`);
	return (await res.json()) as T;
}

/** Every message to this address (Mailpit search syntax: to:addr). */
export async function messagesTo(address: string): Promise<MailSummary[]> {
	const { messages } = await api<{ messages: MailSummary[] }>(`/search?query=${encodeURIComponent(`to:"${address}"`)}&limit=200`);
	return messages.filter((m) => m.To.some((t) => t.Address.toLowerCase() === address.toLowerCase()));
}

export async function getMessage(id: string): Promise<MailMessage> {
	return api<MailMessage>(`/message/${id}`);
}

export async function deleteMessages(ids: string[]): Promise<void> {
	if (ids.length === 0) return;
	const res = await fetch(`${infra.mailpitApiUrl}/api/v1/messages`, {
		method: "DELETE",
		headers: { "content-type": "application/json" },
		body: JSON.stringify({ IDs: ids }),
		signal: AbortSignal.timeout(5_000),
	});
	if (!res.ok) throw new Error(`Mailpit DELETE: ${res.status}`);
}
