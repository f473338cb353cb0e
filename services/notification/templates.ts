/**
 * Message templates: one shared layout (templates/layout.html.hbs and layout.txt.hbs) and, per
 * locale, a catalog (locales/<lang>.json) with each workflow's texts: the e-mail's subject,
 * heading, lines, button and closing lines, and the short title and body of its in-app alert and
 * push message. Adding a language is adding a catalog; a user's locale falls back to its language
 * and then to the default.
 *
 * Texts are Handlebars: `{{name}}` is escaped in the HTML part and left as it is in the text
 * part; helpers `date`, `datetime` and `money` format in the message's locale; `eq` compares.
 * Rendering is strict: a variable a text uses but the workflow does not provide is an error.
 */
import fs from "node:fs";
import path from "node:path";
import Handlebars from "handlebars";

export interface EmailStrings {
	subject: string;
	preheader: string;
	heading: string;
	lines: string[];
	action?: string;
	outro?: string[];
}

export interface AlertStrings {
	title: string;
	body: string;
}

export interface LocaleCatalog {
	product: string;
	layout: { footer: string; preferences: string; securityNotice: string; actionFallback: string };
	messages: Record<string, { email?: EmailStrings; alert?: AlertStrings }>;
}

export interface TemplateSources {
	layouts: { html: string; text: string };
	catalogs: Record<string, LocaleCatalog>;
}

export interface RenderedEmail {
	subject: string;
	html: string;
	text: string;
}

export interface EmailOptions {
	locale?: string | null;
	/** A locked (security) message says it ignores preferences and links to none. */
	locked: boolean;
	preferencesUrl: string;
}

export interface Templates {
	readonly locales: string[];
	resolveLocale(requested?: string | null): string;
	has(messageId: string, part: "email" | "alert"): boolean;
	email(messageId: string, vars: Record<string, unknown>, opts: EmailOptions): RenderedEmail;
	alert(messageId: string, vars: Record<string, unknown>, locale?: string | null): AlertStrings;
}

/** Reads the layouts and every locales/*.json next to this module. */
export function loadTemplateSources(dir: string = import.meta.dirname): TemplateSources {
	const read = (...p: string[]) => fs.readFileSync(path.join(dir, ...p), "utf8");
	const catalogs: Record<string, LocaleCatalog> = {};
	for (const file of fs.readdirSync(path.join(dir, "locales")).filter((f) => f.endsWith(".json"))) {
		catalogs[path.basename(file, ".json")] = JSON.parse(read("locales", file)) as LocaleCatalog;
	}
	return { layouts: { html: read("templates", "layout.html.hbs"), text: read("templates", "layout.txt.hbs") }, catalogs };
}

type Mode = "html" | "text";

export function createTemplates(sources: TemplateSources, defaultLocale = "en"): Templates {
	const fallback = sources.catalogs[defaultLocale];
	if (!fallback) throw new Error(`templates: no catalog for the default locale "${defaultLocale}"`);
	const hb = Handlebars.create();
	registerHelpers(hb);

	const compiled = new Map<string, Handlebars.TemplateDelegate>();
	const compile = (source: string, mode: Mode) => {
		const key = `${mode}\u0000${source}`;
		let template = compiled.get(key);
		if (!template) {
			hb.parse(source); // syntax errors surface here, naming the text
			template = hb.compile(source, { strict: true, noEscape: mode === "text" });
			compiled.set(key, template);
		}
		return template;
	};
	const layouts = { html: compile(sources.layouts.html, "html"), text: compile(sources.layouts.text, "text") };

	const resolveLocale = (requested?: string | null) => {
		if (requested && sources.catalogs[requested]) return requested;
		const language = requested?.split(/[-_]/)[0];
		return language && sources.catalogs[language] ? language : defaultLocale;
	};
	const catalogFor = (locale: string, messageId: string, part: "email" | "alert") => {
		const catalog = sources.catalogs[locale]?.messages[messageId]?.[part] ? sources.catalogs[locale] : fallback;
		if (!catalog.messages[messageId]?.[part]) throw new Error(`templates: no ${part} text for "${messageId}"`);
		return catalog;
	};

	return {
		locales: Object.keys(sources.catalogs),
		resolveLocale,
		has: (messageId, part) => Boolean(fallback.messages[messageId]?.[part]),

		email(messageId, vars, opts) {
			const locale = resolveLocale(opts.locale);
			const catalog = catalogFor(locale, messageId, "email");
			const strings = catalog.messages[messageId]!.email!;
			const context = { product: catalog.product, ...vars };
			const data = { data: { locale } };
			const parts = (mode: Mode) => {
				const r = (source: string) => compile(source, mode)(context, data);
				return {
					lang: locale,
					product: catalog.product,
					subject: r(strings.subject),
					preheader: r(strings.preheader),
					heading: r(strings.heading),
					lines: strings.lines.map(r),
					action: strings.action && typeof vars.actionUrl === "string" ? { label: r(strings.action), url: vars.actionUrl } : null,
					actionFallback: r(catalog.layout.actionFallback),
					outro: (strings.outro ?? []).map(r),
					securityNotice: opts.locked ? r(catalog.layout.securityNotice) : null,
					footer: r(catalog.layout.footer),
					preferences: r(catalog.layout.preferences),
					preferencesUrl: opts.locked ? null : opts.preferencesUrl,
				};
			};
			const text = parts("text");
			return {
				subject: text.subject.replace(/\s+/g, " ").trim(),
				html: layouts.html({ ...parts("html"), subject: text.subject }, data),
				text: `${layouts.text(text, data).replace(/\n{3,}/g, "\n\n").trim()}\n`,
			};
		},

		alert(messageId, vars, requested) {
			const locale = resolveLocale(requested);
			const catalog = catalogFor(locale, messageId, "alert");
			const strings = catalog.messages[messageId]!.alert!;
			const context = { product: catalog.product, ...vars };
			const r = (source: string) => compile(source, "text")(context, { data: { locale } }).replace(/\s+/g, " ").trim();
			return { title: r(strings.title), body: r(strings.body) };
		},
	};
}

type HelperOptions = { data?: { locale?: string } };

function registerHelpers(hb: typeof Handlebars): void {
	const localeOf = (options: HelperOptions) => options.data?.locale ?? "en";
	const asDate = (value: unknown) => (typeof value === "string" || typeof value === "number" ? new Date(value) : undefined);
	// Building an Intl formatter costs far more than using one: one per locale and style, kept.
	const formatters = new Map<string, Intl.DateTimeFormat | Intl.NumberFormat>();
	const formatter = <T extends Intl.DateTimeFormat | Intl.NumberFormat>(key: string, make: () => T): T => {
		let f = formatters.get(key) as T | undefined;
		if (!f) formatters.set(key, (f = make()));
		return f;
	};
	const dateFormat = (locale: string, withTime: boolean) =>
		formatter(`date\u0000${locale}\u0000${withTime}`, () => new Intl.DateTimeFormat(locale, { dateStyle: "long", ...(withTime ? { timeStyle: "short" } : {}), timeZone: "UTC" }));
	hb.registerHelper("date", (value: unknown, options: HelperOptions) => {
		const date = asDate(value);
		return date ? dateFormat(localeOf(options), false).format(date) : "";
	});
	hb.registerHelper("datetime", (value: unknown, options: HelperOptions) => {
		const date = asDate(value);
		return date ? `${dateFormat(localeOf(options), true).format(date)} UTC` : "";
	});
	// Amounts travel as integers in the currency's minor unit (lib/events/catalog.ts).
	hb.registerHelper("money", (minor: unknown, currency: unknown, options: HelperOptions) => {
		if (typeof minor !== "number" || typeof currency !== "string") return "";
		const code = currency.toUpperCase();
		const format = formatter(`money\u0000${localeOf(options)}\u0000${code}`, () => new Intl.NumberFormat(localeOf(options), { style: "currency", currency: code }));
		return format.format(minor / 10 ** (format.resolvedOptions().maximumFractionDigits ?? 2));
	});
	hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);
}
