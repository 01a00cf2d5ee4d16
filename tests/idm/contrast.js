// WCAG 2.2 contrast of what the page shows, from getComputedStyle (tests/idm/test_login_browser.py).
// Returns {texts: [{text, ratio}], components: [{what, ratio}]}.
() => {
  const rgba = (css) => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) throw new Error(`unexpected colour ${css}`);
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const blend = ([r, g, b, a], [R, G, B]) => [r * a + R * (1 - a), g * a + G * (1 - a), b * a + B * (1 - a), 1];
  // WCAG 2.2 "relative luminance" (sRGB).
  const luminance = ([r, g, b]) => {
    const f = (v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100;
  };
  const opacity = (el) => {
    let o = 1;
    for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  };
  // The first opaque background at or above el (nothing opaque: a failure, not a guess).
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] === 1) return c;
      if (c[3] > 0) throw new Error("a translucent background is not measured");
    }
    throw new Error("no opaque background behind the text");
  };
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility === "visible";
  const texts = [];
  for (const el of document.body.querySelectorAll("*")) {
    const own = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join("").trim();
    const value = el.tagName === "INPUT" && el.type !== "hidden" ? el.value : "";
    const text = own || value;
    if (!text || !shown(el)) continue;
    const bg = background(el);
    const fg = rgba(getComputedStyle(el).color);
    fg[3] *= opacity(el);
    texts.push({ text, ratio: ratio(blend(fg, bg), bg) });
  }
  const page = background(document.querySelector("main"));
  const components = [];
  const measure = (what, colour, behind) => components.push({ what, ratio: ratio(rgba(colour), behind) });
  const input = document.querySelector("#username");
  if (input) measure("input border", getComputedStyle(input).borderTopColor, background(input.parentElement));
  const button = document.querySelector("button");
  if (button) components.push({ what: "button", ratio: ratio(background(button), page) });
  const focused = document.activeElement;
  if (focused && focused !== document.body) {
    const style = getComputedStyle(focused);
    if (style.outlineStyle === "none") components.push({ what: "focus outline", ratio: 0 });
    else measure("focus outline", style.outlineColor, page);
  }
  const error = document.querySelector(".error");
  if (error) measure("error bar", getComputedStyle(error).borderLeftColor, page);
  return { texts, components };
}
