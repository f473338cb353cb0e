/**
 * The account's own details: the display name, and moving the account to another e-mail address.
 * The move needs the password and takes effect only when the link sent to the new address is
 * followed and confirmed there (the console's confirm-email page); until then the account keeps
 * its address.
 */
import { useState } from "preact/hooks";
import { api } from "./api.ts";
import type { Me } from "./api.ts";
import { ErrorBox, Field, useSubmit } from "./ui.tsx";

export function Account({ me, onSaved }: { me: Me; onSaved: (me: Me) => void }) {
	const [name, setName] = useState(me.name ?? "");
	const [saved, setSaved] = useState(false);
	const profile = useSubmit(() => api<Me>("PATCH", "/api/v1/auth/me", { name }), (updated) => {
		setSaved(true);
		onSaved(updated);
	});
	const [newEmail, setNewEmail] = useState("");
	const [password, setPassword] = useState("");
	const [sentTo, setSentTo] = useState<string | null>(null);
	const move = useSubmit(() => api("POST", "/api/v1/auth/email/change", { newEmail, password }), () => {
		setSentTo(newEmail);
		setPassword("");
	});
	return (
		<section class="card wide" aria-labelledby="account-title">
			<h2 id="account-title">Your account</h2>
			<form onSubmit={profile.onSubmit}>
				<ErrorBox error={profile.error} />
				<Field label="Display name" name="name" autocomplete="name" required={false} value={name} onInput={(v) => (setName(v), setSaved(false))} error={profile.error} />
				<button type="submit" class="secondary" disabled={profile.busy}>Save the name</button> {saved && <span class="badge ok" role="status">saved</span>}
			</form>
			<form onSubmit={move.onSubmit} aria-labelledby="move-title">
				<h3 id="move-title">Change e-mail address</h3>
				<ErrorBox error={move.error} />
				{sentTo && <p role="status">We sent a link to {sentTo}. Your account keeps {me.email} until you follow it.</p>}
				<Field label="New e-mail address" name="newEmail" type="email" autocomplete="email" value={newEmail} onInput={setNewEmail} error={move.error} />
				<Field label="Your password" name="password" type="password" autocomplete="current-password" value={password} onInput={setPassword} error={move.error} />
				<button type="submit" class="secondary" disabled={move.busy}>Send the confirmation link</button>
			</form>
		</section>
	);
}
