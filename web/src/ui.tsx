/**
 * The console's building blocks: a form that submits to the API and shows its problem+json, a
 * labelled field with its own error message, the error box, money.
 */
import { minorUnitDigits } from "../../lib/currencies.ts";
import { useState } from "preact/hooks";
import type { TargetedSubmitEvent } from "preact";
import { ApiError } from "./api.ts";

/** A form whose submit calls the API; keeps the problem for the error box and the fields. */
export function useSubmit<T>(action: () => Promise<T>, done: (result: T) => void) {
	const [error, setError] = useState<ApiError | null>(null);
	const [busy, setBusy] = useState(false);
	const submit = async () => {
		setBusy(true);
		setError(null);
		try {
			done(await action());
		} catch (err) {
			setError(asApiError(err));
		} finally {
			setBusy(false);
		}
	};
	const onSubmit = (e: TargetedSubmitEvent<HTMLFormElement>) => {
		e.preventDefault();
		void submit();
	};
	return { error, busy, onSubmit, submit };
}

/**
 * An action on what a card lists (turn push on, remove a device, sign out a session): busy while
 * it runs, its problem kept for the error box, and the list loaded again afterwards either way.
 */
export function useListAction(reload: () => Promise<void>) {
	const [error, setError] = useState<ApiError | null>(null);
	const [busy, setBusy] = useState(false);
	const run = async (action: () => Promise<unknown>) => {
		setBusy(true);
		setError(null);
		try {
			await action();
		} catch (err) {
			setError(asApiError(err));
		} finally {
			await reload();
			setBusy(false);
		}
	};
	return { error, setError, busy, run };
}

/** What a failed call becomes on screen; a fetch that never reached the server says so. */
export const asApiError = (err: unknown) => (err instanceof ApiError ? err : new ApiError({ status: 0, code: "NETWORK", detail: "The server could not be reached." }));

export function Field(props: {
	label: string;
	name: string;
	/** The element id, when two forms on one page have a field of the same name. */
	id?: string;
	type?: "text" | "email" | "password" | "search" | "number";
	value: string;
	onInput: (v: string) => void;
	error?: ApiError | null;
	autocomplete?: string;
	required?: boolean;
	disabled?: boolean;
	hint?: string;
}) {
	const id = props.id ?? `f-${props.name}`;
	const message = props.error?.field(props.name);
	const described = [message && `${id}-error`, props.hint && `${id}-hint`].filter(Boolean).join(" ") || undefined;
	return (
		<p class="field">
			<label for={id}>{props.label}</label>
			{/* Preact types each input `type` separately; this one field serves several. */}
			<input
				{...({ type: props.type ?? "text" } as { type: "text" })}
				id={id}
				name={props.name}
				value={props.value}
				autocomplete={props.autocomplete}
				required={props.required ?? true}
				disabled={props.disabled}
				aria-invalid={message ? "true" : undefined}
				aria-describedby={described}
				onInput={(e) => props.onInput(e.currentTarget.value)}
			/>
			{props.hint && <span class="hint" id={`${id}-hint`}>{props.hint}</span>}
			{message && <span class="field-error" id={`${id}-error`}>{message}</span>}
		</p>
	);
}

/** The problem's detail; with `fields`, also each field the API named (for forms that do not show them all). */
export const ErrorBox = ({ error, fields }: { error: ApiError | null; fields?: boolean }) =>
	error ? (
		<div class="error" role="alert">
			<p>{error.problem.detail}</p>
			{fields && error.problem.errors?.length ? (
				<ul>
					{error.problem.errors.map((e) => (
						<li key={e.field}>
							<code>{e.field}</code>: {e.message}
						</li>
					))}
				</ul>
			) : null}
		</div>
	) : null;

/** Minor units per major unit of a currency (100 for USD, 1 for JPY, 1000 for KWD), as the server counts them. */
export const minorPerMajor = (currency: string) => 10 ** minorUnitDigits(currency);
/** An amount in minor units (as the API gives them), formatted in the currency. */
export const money = (amount: number, currency: string) => new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(amount / minorPerMajor(currency));
