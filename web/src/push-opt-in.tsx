/** Web push on this device (on / off) and the devices of the account that receive push. */
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.ts";
import type { PushDevice } from "./api.ts";
import { disablePush, enablePush, pushState } from "./push.ts";
import type { PushState } from "./push.ts";
import { asApiError, ErrorBox, useListAction } from "./ui.tsx";

const STATE_TEXT: Record<PushState["kind"], string> = {
	unsupported: "This browser does not support web push.",
	"server-off": "Web push is not enabled on this server.",
	blocked: "Notifications are blocked for this site; allow them in the browser's site settings to turn push on.",
	off: "Push is off on this device.",
	on: "Push is on for this device.",
};

/** A name the user recognises in the device list. */
const deviceName = () => {
	const ua = navigator.userAgent;
	const browser = /Firefox\//.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
	return `${browser} on ${navigator.platform || "this device"}`;
};

export function PushOptIn() {
	const [state, setState] = useState<PushState | null>(null);
	const [devices, setDevices] = useState<PushDevice[]>([]);
	const { error, setError, busy, run } = useListAction(() => refresh());
	const refresh = async () => {
		try {
			setState(await pushState());
			setDevices((await api<{ items: PushDevice[] }>("GET", "/api/v1/notifications/push-subscriptions")).items);
		} catch (err) {
			setError(asApiError(err));
		}
	};
	useEffect(() => void refresh(), []);
	const remove = (device: PushDevice) => run(() => api("DELETE", `/api/v1/notifications/push-subscriptions/${encodeURIComponent(device.id)}`));
	const change = (on: boolean) => run(() => (on ? enablePush(deviceName()) : disablePush()));
	return (
		<div class="push" aria-labelledby="push-title">
			<h3 id="push-title">Web push</h3>
			<p role="status" data-testid="push-state">{state ? STATE_TEXT[state.kind] : "Checking this browser…"}</p>
			<ErrorBox error={error} />
			{state?.kind === "off" && <button type="button" disabled={busy} onClick={() => void change(true)}>Turn on push on this device</button>}
			{state?.kind === "on" && <button type="button" class="secondary" disabled={busy} onClick={() => void change(false)}>Turn off push on this device</button>}
			{devices.length > 0 && (
				<>
					<h4>Devices receiving push</h4>
					<ul class="devices">
						{devices.map((d) => (
							<li key={d.id}>
								{d.deviceName || "Unnamed device"} <span class="hint">since {new Date(d.createdAt).toLocaleDateString()} · {new URL(d.pushService).host}</span>{" "}
								<button type="button" class="secondary" disabled={busy} aria-label={`Remove ${d.deviceName || "unnamed device"}`} onClick={() => void remove(d)}>Remove</button>
							</li>
						))}
					</ul>
				</>
			)}
		</div>
	);
}
