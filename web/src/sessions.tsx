/** Where the account is signed in, and signing out a device from here (a lost phone, a shared computer). */
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.ts";
import type { AccountSession } from "./api.ts";
import { asApiError, ErrorBox, useListAction } from "./ui.tsx";

const when = (iso: string) => new Date(iso).toLocaleString();

export function Sessions() {
	const [sessions, setSessions] = useState<AccountSession[] | null>(null);
	const { error, setError, busy, run } = useListAction(() => refresh());
	const refresh = async () => {
		try {
			setSessions((await api<{ items: AccountSession[] }>("GET", "/api/v1/auth/sessions")).items);
		} catch (err) {
			setError(asApiError(err));
		}
	};
	useEffect(() => void refresh(), []);
	const signOut = (session: AccountSession) => run(() => api("DELETE", `/api/v1/auth/sessions/${encodeURIComponent(session.id)}`));
	const signOutOthers = () => run(() => api("POST", "/api/v1/auth/logout", { otherSessions: true }));
	const others = sessions?.filter((s) => !s.current).length ?? 0;
	return (
		<section class="card wide" aria-labelledby="sessions-title">
			<h2 id="sessions-title">Where you are signed in</h2>
			<ErrorBox error={error} />
			{!sessions && !error && <p aria-busy="true">Loading…</p>}
			<ul class="sessions">
				{sessions?.map((s) => (
					<li key={s.id} data-testid="session">
						{s.current ? <span class="badge ok">this device</span> : <span>Another device</span>}{" "}
						<span class="hint">
							last active {when(s.lastUsedAt)}
							{s.clientIp ? ` · ${s.clientIp}` : ""} · signed in {when(s.createdAt)}
						</span>{" "}
						{!s.current && (
							<button type="button" class="secondary" disabled={busy} onClick={() => void signOut(s)}>
								Sign out
							</button>
						)}
					</li>
				))}
			</ul>
			{others > 1 && (
				<button type="button" class="secondary" disabled={busy} onClick={() => void signOutOthers()}>
					Sign out all other devices
				</button>
			)}
		</section>
	);
}
