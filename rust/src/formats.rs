//! The format registry: every supported format as data (markers, family, model families),
//! and the model-id table used by auto-detection.

use std::sync::LazyLock;

use crate::emit::IdStyle;
use crate::families::envelope::{Envelope, EnvelopeSpec};
use crate::families::gemma::{Gemma, GemmaSpec};
use crate::families::harmony::{Harmony, HarmonySpec};
use crate::families::named::{self, Named, NamedSpec};
use crate::families::pythonic::{Pythonic, PythonicSpec};
use crate::families::xml::{Xml, XmlSpec};
use crate::families::{CompiledMarkers, Family, Prose, ProseSpec};

/// Which family reads a format, with the format's data.
#[derive(Debug, Clone)]
pub enum FamilySpec {
    Envelope(EnvelopeSpec),
    Pythonic(PythonicSpec),
    Gemma(GemmaSpec),
    Harmony(HarmonySpec),
    Xml(XmlSpec),
    Named(NamedSpec),
}

/// What may follow a trigger marker for the format to apply (used to tell apart formats
/// that share a marker, e.g. `<tool_call>` for hermes, qwen3_xml and glm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Anything.
    Any,
    /// `{` or `[` after optional whitespace.
    Json,
    /// `[` after optional whitespace.
    JsonArray,
    /// `{` after optional whitespace.
    JsonObject,
    /// `[` (optionally after whitespace) then a Python identifier and `(`.
    PythonList,
    /// The given literal after optional whitespace.
    Literal(&'static str),
    /// An identifier (the tool name) followed, before any newline, by one of the markers.
    NameThen(&'static [&'static str]),
    /// An identifier (the tool name) then a newline or `<`.
    Name,
    /// One of the literals (after optional whitespace), then the inner rule on what follows.
    Then(&'static [&'static str], &'static After),
    /// Any of the rules.
    AnyOf(&'static [After]),
}

/// One supported format.
#[derive(Debug, Clone)]
pub struct Format {
    /// Canonical name (the corpus file name).
    pub name: &'static str,
    /// Model families that emit it.
    pub models: &'static str,
    /// How the text right after a trigger must look for this format (per trigger, or one
    /// rule for all).
    pub after: After,
    /// Auto-detection (with no model hint) may pick this format for a bare `{`/`[` at the
    /// start of the output.
    pub auto_bare: bool,
    /// Call markers, reasoning blocks and dropped tokens of the prose around calls.
    pub prose: ProseSpec,
    pub family: FamilySpec,
}

impl Format {
    /// A fresh state machine for this format.
    pub fn build(&'static self, in_reasoning: bool, lenient: bool) -> Box<dyn Family> {
        let prose = Prose::new(&self.prose, in_reasoning);
        match &self.family {
            FamilySpec::Envelope(s) => Box::new(Envelope::new(s, prose, lenient)),
            FamilySpec::Pythonic(s) => Box::new(Pythonic::new(s, &self.prose, in_reasoning, lenient)),
            FamilySpec::Gemma(s) => Box::new(Gemma::new(s, &self.prose, in_reasoning, lenient)),
            FamilySpec::Harmony(s) => Box::new(Harmony::new(s, &self.prose, in_reasoning, lenient)),
            FamilySpec::Xml(s) => Box::new(Xml::new(s, prose, lenient)),
            FamilySpec::Named(s) => Box::new(Named::new(s, &self.prose, prose, lenient)),
        }
    }
}

const THINK: (&str, &str) = ("<think>", "</think>");
const EOT: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "</s>",
    "<|endoftext|>",
];

fn prose(
    triggers: &[&'static str],
    reasoning: &[(&'static str, &'static str)],
    strip: &[&'static str],
    bare: bool,
) -> ProseSpec {
    let mut s: Vec<&'static str> = EOT.to_vec();
    s.extend_from_slice(strip);
    ProseSpec {
        triggers: triggers.to_vec(),
        reasoning: reasoning.to_vec(),
        strip: s,
        bare_json_at_start: bare,
        bare_json_anywhere: false,
        compiled: CompiledMarkers::default(),
    }
}

fn env(regions: &[(&'static str, Option<&'static str>)]) -> EnvelopeSpec {
    EnvelopeSpec {
        closes: regions.iter().map(|r| r.1).collect(),
        name_as_key: false,
        id_style: IdStyle::OpenAi,
    }
}

/// An envelope format: call regions (open, optional close), bare JSON at the start,
/// extra dropped tokens, reasoning blocks.
#[allow(clippy::type_complexity)]
fn envelope(
    name: &'static str,
    models: &'static str,
    after: After,
    regions: &[(&'static str, Option<&'static str>)],
    bare: bool,
    strip: &[&'static str],
    reasoning: &[(&'static str, &'static str)],
) -> Format {
    let triggers: Vec<&'static str> = regions.iter().map(|r| r.0).collect();
    Format {
        name,
        models,
        after,
        auto_bare: false,
        prose: prose(&triggers, reasoning, strip, bare),
        family: FamilySpec::Envelope(env(regions)),
    }
}

/// Sets a format's envelope data (id style, name-as-key).
fn with_envelope(mut f: Format, edit: impl FnOnce(&mut EnvelopeSpec)) -> Format {
    let FamilySpec::Envelope(spec) = &mut f.family else {
        unreachable!("with_envelope on a non-envelope format")
    };
    edit(spec);
    f
}

/// All formats, in detection priority order.
pub static FORMATS: LazyLock<Vec<Format>> = LazyLock::new(|| {
    let mut v = vec![
        envelope(
            "hermes",
            "Hermes-2-Pro/3, Qwen2.5, QwQ, Qwen3, Qwen3-VL, Granite-4, ERNIE-4.5",
            After::Json,
            &[("<tool_call>", Some("</tool_call>"))],
            false,
            &[],
            &[THINK],
        ),
        envelope(
            "longcat",
            "LongCat-Flash",
            After::Json,
            &[("<longcat_tool_call>", Some("</longcat_tool_call>"))],
            false,
            &[],
            &[THINK],
        ),
        envelope(
            "llama3_json",
            "Llama 3.1 / 3.2 / 3.3, Llama-4 (JSON mode)",
            After::Json,
            &[("<|python_tag|>", None)],
            true,
            &[],
            &[],
        ),
        {
            let mut f = envelope(
                "generic_json",
                "any model without a native format; OpenAI-style model names",
                After::Json,
                &[("```json", Some("```"))],
                true,
                &[],
                &[THINK],
            );
            f.auto_bare = true;
            // With the format named explicitly, a JSON call may sit anywhere in the prose.
            f.prose.bare_json_anywhere = true;
            f
        },
        with_envelope(
            envelope(
                "mistral_array",
                "Mistral-7B-v0.3, Mixtral, Mistral-Nemo, Mistral-Small-3.1",
                After::Json,
                &[("[TOOL_CALLS]", None)],
                false,
                &[],
                &[("[THINK]", "[/THINK]")],
            ),
            |s| s.id_style = IdStyle::Mistral9,
        ),
        envelope(
            "functools",
            "Phi-4-mini, FireFunction-v2",
            After::Json,
            &[("functools", None)],
            false,
            &[],
            &[],
        ),
        envelope(
            "granite",
            "Granite 3.0 / 3.1",
            After::Json,
            &[("<|tool_call|>", None), ("<tool_call>", None)],
            false,
            &[],
            &[THINK],
        ),
        envelope(
            "granite_20b_fc",
            "granite-20b-functioncalling",
            After::Json,
            &[("<function_call>", None)],
            false,
            &[],
            &[],
        ),
        envelope(
            "internlm",
            "InternLM2 / 2.5, Intern-S1",
            After::Json,
            &[("<|action_start|><|plugin|>", Some("<|action_end|>"))],
            false,
            &[],
            &[THINK],
        ),
        envelope(
            "json_list_in_tag",
            "Jamba-1.5, Hunyuan-A13B (<tool_calls>), Nemotron-Nano-v2 (<TOOLCALL>)",
            After::JsonArray,
            &[
                ("<tool_calls>", Some("</tool_calls>")),
                ("<TOOLCALL>", Some("</TOOLCALL>")),
            ],
            false,
            &[],
            &[THINK],
        ),
        envelope(
            "minimax_m1",
            "MiniMax-M1, MiniMax-Text-01",
            After::JsonObject,
            &[("<tool_calls>", Some("</tool_calls>"))],
            false,
            &[],
            &[THINK],
        ),
        {
            // xLAM puts its JSON list anywhere: after a <think> block (left in content), in a fence.
            let mut f = envelope(
                "xlam",
                "Salesforce xLAM-2",
                After::Json,
                &[
                    ("[TOOL_CALLS]", None),
                    ("<tool_call>", Some("</tool_call>")),
                    ("```json", Some("```")),
                ],
                true,
                &[],
                &[],
            );
            f.prose.bare_json_anywhere = true;
            f
        },
        envelope(
            "cohere",
            "Command-R7B, Command-A",
            After::Json,
            &[("<|START_ACTION|>", Some("<|END_ACTION|>"))],
            false,
            &[
                "<|START_RESPONSE|>",
                "<|END_RESPONSE|>",
                "<|START_TEXT|>",
                "<|END_TEXT|>",
            ],
            &[("<|START_THINKING|>", "<|END_THINKING|>")],
        ),
        with_envelope(
            envelope(
                "apertus",
                "Swiss AI Apertus",
                After::Json,
                &[("<|tools_prefix|>", Some("<|tools_suffix|>"))],
                false,
                &[],
                &[],
            ),
            |s| s.name_as_key = true,
        ),
        envelope(
            "gigachat3",
            "GigaChat 3 / 3.1",
            After::Json,
            &[
                ("<|message_sep|>\n\nfunction call<|role_sep|>\n", None),
                ("<|function_call|>", None),
            ],
            false,
            &[],
            &[],
        ),
    ];
    v.extend(python_formats());
    v.extend(gemma_formats());
    // gpt-oss: messages open with `<|start|>`, or directly with `<|channel|>`.
    v.push(Format {
        name: "harmony",
        models: "gpt-oss-20b/120b",
        after: After::Any,
        auto_bare: false,
        prose: prose(
            &["<|start|>", "<|channel|>"],
            &[],
            &["<|end|>", "<|call|>", "<|return|>"],
            false,
        ),
        family: FamilySpec::Harmony(HarmonySpec::default()),
    });
    v.extend(xml_formats());
    v.extend(named_formats());
    v.shrink_to_fit();
    v
});

/// A Python-call format: call regions (open, optional close), extra dropped tokens,
/// reasoning blocks.
fn python_format(
    name: &'static str,
    models: &'static str,
    after: After,
    regions: &[(&'static str, Option<&'static str>)],
    strip: &[&'static str],
    reasoning: &[(&'static str, &'static str)],
    family: PythonicSpec,
) -> Format {
    let triggers: Vec<&'static str> = regions.iter().map(|r| r.0).collect();
    let family = PythonicSpec {
        closes: regions.iter().map(|r| r.1).collect(),
        ..family
    };
    Format {
        name,
        models,
        after,
        auto_bare: false,
        prose: prose(&triggers, reasoning, strip, false),
        family: FamilySpec::Pythonic(family),
    }
}

/// gemma4, functiongemma: `call:NAME{…}` with a string-delimiter token.
fn gemma_formats() -> Vec<Format> {
    let gemma = |name,
                 models,
                 open: &'static str,
                 close: &'static str,
                 delim,
                 strip: &[&'static str],
                 reasoning: &[(&'static str, &'static str)]| {
        let mut strip = strip.to_vec();
        // A repeated close marker after a call is noise.
        strip.push(close);
        Format {
            name,
            models,
            after: After::Any,
            auto_bare: false,
            prose: prose(&[open], reasoning, &strip, false),
            family: FamilySpec::Gemma(GemmaSpec { delim, close }),
        }
    };
    vec![
        gemma(
            "gemma4",
            "Gemma-4",
            "<|tool_call>",
            "<tool_call|>",
            "<|\"|>",
            &["<|tool_response>", "<tool_response|>", "<turn|>"],
            // `<|channel>thought\n…<channel|>`; any other channel block is not content either.
            &[("<|channel>thought", "<channel|>"), ("<|channel>", "<channel|>")],
        ),
        gemma(
            "functiongemma",
            "FunctionGemma-270m",
            "<start_function_call>",
            "<end_function_call>",
            "<escape>",
            &["<start_function_response>", "<end_function_response>", "<end_of_turn>"],
            &[],
        ),
    ]
}

/// pythonic, olmo3, lfm2.
fn python_formats() -> Vec<Format> {
    let spec = |bare_list, json_in_region| PythonicSpec {
        closes: Vec::new(),
        bare_list,
        json_in_region,
    };
    let mut pythonic = python_format(
        "pythonic",
        "Llama-3.2 1B/3B, Llama-4 (pythonic mode), ToolACE",
        After::PythonList,
        &[("<|python_start|>", Some("<|python_end|>"))],
        &["<|python_end|>"],
        &[],
        spec(true, false),
    );
    // `[get_weather(city="x")]` at the start of the output is pythonic in auto mode.
    pythonic.auto_bare = true;
    pythonic.prose.bare_json_at_start = true;
    vec![
        pythonic,
        python_format(
            "olmo3",
            "Olmo-3",
            After::NameThen(&["("]),
            &[("<function_calls>", Some("</function_calls>"))],
            &[],
            &[THINK],
            spec(false, false),
        ),
        python_format(
            "lfm2",
            "Liquid LFM2 / LFM2.5",
            After::Any,
            &[("<|tool_call_start|>", Some("<|tool_call_end|>"))],
            &["<|tool_call_end|>"],
            &[THINK],
            spec(false, true),
        ),
    ]
}

/// An XML-ish format: its sections are its call triggers.
fn xml_format(
    name: &'static str,
    models: &'static str,
    after: After,
    spec: XmlSpec,
    strip: &[&'static str],
    reasoning: &[(&'static str, &'static str)],
) -> Format {
    let triggers: Vec<&'static str> = spec.sections.iter().map(|s| s.0).collect();
    Format {
        name,
        models,
        after,
        auto_bare: false,
        prose: prose(&triggers, reasoning, strip, false),
        family: FamilySpec::Xml(spec),
    }
}

/// qwen3_xml, seed_oss, glm47, glm45, minimax_m2, step3, deepseek_dsml, kimi_k3. Those
/// sharing `<tool_call>` with hermes are told apart by what follows it (`<function=` for
/// qwen3_xml, a bare name for GLM).
fn xml_formats() -> Vec<Format> {
    use crate::families::xml::specs;
    vec![
        xml_format(
            "qwen3_xml",
            "Qwen3-Coder, Qwen3.5 / 3.6, Nemotron-3-Nano, Step-3.5, MiMo",
            After::Literal("<function="),
            specs::qwen3_xml(),
            &[],
            &[THINK],
        ),
        xml_format(
            "seed_oss",
            "ByteDance Seed-OSS-36B",
            After::Any,
            specs::seed_oss(),
            &["<seed:eos>"],
            &[("<seed:think>", "</seed:think>")],
        ),
        xml_format(
            "glm47",
            "GLM-4.7, GLM-5.x",
            After::NameThen(&["<arg_key>", "</tool_call>"]),
            specs::glm(),
            &[],
            &[THINK],
        ),
        xml_format(
            "glm45",
            "GLM-4.5, GLM-4.6",
            After::NameThen(&["\n<arg_key>", "\n</tool_call>", "<arg_key>", "</tool_call>"]),
            specs::glm(),
            &[],
            &[THINK],
        ),
        xml_format(
            "minimax_m2",
            "MiniMax-M2 / M2.x",
            After::Any,
            specs::minimax_m2(),
            &[],
            &[THINK],
        ),
        xml_format("step3", "Step-3", After::Any, specs::step3(), &[], &[THINK]),
        xml_format(
            "deepseek_dsml",
            "DeepSeek-V3.2, V4, V4.1",
            After::Any,
            specs::deepseek_dsml(),
            &["<｜end▁of▁sentence｜>"],
            &[THINK],
        ),
        xml_format(
            "kimi_k3",
            "Kimi-K3",
            After::Any,
            specs::kimi_k3(),
            &[
                "<|open|>response<|sep|>",
                "<|close|>response<|sep|>",
                "<|close|>message<|sep|>",
            ],
            &[("<|open|>think<|sep|>", "<|close|>think<|sep|>")],
        ),
    ]
}

/// A named-call format: marker, tool name, JSON arguments (see [`named`]).
fn named_format(
    name: &'static str,
    models: &'static str,
    after: After,
    spec: NamedSpec,
    strip: &[&'static str],
    reasoning: &[(&'static str, &'static str)],
) -> Format {
    // A stray section close in prose is a special token, never text.
    let mut strip = strip.to_vec();
    strip.extend(spec.sections.iter().map(|s| s.1));
    Format {
        name,
        models,
        after,
        auto_bare: false,
        prose: prose(&spec.triggers(), reasoning, &strip, false),
        family: FamilySpec::Named(spec),
    }
}

/// `function<｜tool▁sep｜>` after a DeepSeek call-open marker: the V3 header.
const DEEPSEEK_V3_HEAD: After = After::Then(&["function"], &After::Then(named::DEEPSEEK_SEPS, &After::Any));
/// `NAME<｜tool▁sep｜>` after a DeepSeek call-open marker: the V3.1 header.
const DEEPSEEK_V31_HEAD: After = After::NameThen(named::DEEPSEEK_SEPS);

/// mistral_v13, mistral_v11 (after mistral_array, which owns `[TOOL_CALLS][`), deepseek_v3,
/// deepseek_v31 (told apart by the call header), kimi_k2, functionary_v31, functionary_v32,
/// inkling.
fn named_formats() -> Vec<Format> {
    vec![
        named_format(
            "mistral_v13",
            "Magistral-2509, Ministral-3, Devstral-2, Mistral-Small-4, Medium-3.5",
            After::NameThen(&["[ARGS]"]),
            named::MISTRAL,
            &[],
            &[("[THINK]", "[/THINK]")],
        ),
        named_format(
            "mistral_v11",
            "Mistral-Small-3.2, Magistral-2506/2507",
            After::NameThen(&["[CALL_ID]"]),
            named::MISTRAL,
            &[],
            &[("[THINK]", "[/THINK]")],
        ),
        named_format(
            "deepseek_v3",
            "DeepSeek-V3, V3-0324, R1, R1-0528, Cogito",
            After::AnyOf(&[After::Then(named::DEEPSEEK_OPENS, &DEEPSEEK_V3_HEAD), DEEPSEEK_V3_HEAD]),
            named::DEEPSEEK,
            named::DEEPSEEK_STRIP,
            &[THINK],
        ),
        named_format(
            "deepseek_v31",
            "DeepSeek-V3.1, V3.1-Terminus, V3.2-Exp",
            After::AnyOf(&[
                After::Then(named::DEEPSEEK_OPENS, &DEEPSEEK_V31_HEAD),
                DEEPSEEK_V31_HEAD,
            ]),
            named::DEEPSEEK,
            named::DEEPSEEK_STRIP,
            &[THINK],
        ),
        named_format(
            "kimi_k2",
            "Kimi-K2 (Instruct, 0905, Thinking), K2.5 / K2.6",
            After::Any,
            named::KIMI,
            &[],
            &[THINK],
        ),
        named_format(
            "functionary_v31",
            "Functionary v3.1 (Llama-3.1 based)",
            After::NameThen(&[">{", "> {", ">\n{"]),
            named::FUNCTIONARY_V31,
            &[],
            &[],
        ),
        named_format(
            "functionary_v32",
            "Functionary v3.2",
            After::NameThen(&["\n"]),
            named::FUNCTIONARY_V32,
            &[],
            &[],
        ),
        named_format(
            "inkling",
            "Inkling",
            After::Any,
            named::INKLING,
            named::INKLING_STRIP,
            &[("<|content_thinking|>", "<|end_message|>")],
        ),
    ]
}

/// The format called `name`.
pub fn by_name(name: &str) -> Option<&'static Format> {
    FORMATS.iter().find(|f| f.name == name)
}

/// Model-id patterns (lowercase substrings, most specific first) and the format they use.
pub static MODEL_TABLE: &[(&str, &str)] = &[
    ("qwen3-coder", "qwen3_xml"),
    ("qwen3.5", "qwen3_xml"),
    ("qwen3.6", "qwen3_xml"),
    ("qwen3_5", "qwen3_xml"),
    ("nemotron-3-nano", "qwen3_xml"),
    ("nemotron-nano-3", "qwen3_xml"),
    ("step-3.5", "qwen3_xml"),
    ("mimo", "qwen3_xml"),
    ("seed-oss", "seed_oss"),
    ("qwq", "hermes"),
    ("qwen", "hermes"),
    ("hermes", "hermes"),
    ("ernie", "hermes"),
    ("granite-20b-functioncalling", "granite_20b_fc"),
    ("granite-3", "granite"),
    ("granite", "hermes"),
    ("longcat", "longcat"),
    ("llama-4", "pythonic"),
    ("llama4", "pythonic"),
    ("toolace", "pythonic"),
    ("llama", "llama3_json"),
    ("magistral", "mistral_v13"),
    ("ministral", "mistral_v13"),
    ("devstral", "mistral_v13"),
    ("mistral-small-4", "mistral_v13"),
    ("mistral-medium", "mistral_v13"),
    ("mistral-small-3.2", "mistral_v11"),
    ("mistral", "mistral_array"),
    ("mixtral", "mistral_array"),
    ("phi-4-mini", "functools"),
    ("phi4-mini", "functools"),
    ("firefunction", "functools"),
    ("internlm", "internlm"),
    ("intern-s1", "internlm"),
    ("jamba", "json_list_in_tag"),
    ("hunyuan", "json_list_in_tag"),
    ("nemotron-nano", "json_list_in_tag"),
    ("minimax-m1", "minimax_m1"),
    ("minimax-text", "minimax_m1"),
    ("minimax", "minimax_m2"),
    ("xlam", "xlam"),
    ("command-r", "cohere"),
    ("command-a", "cohere"),
    ("c4ai", "cohere"),
    ("apertus", "apertus"),
    ("gigachat", "gigachat3"),
    ("inkling", "inkling"),
    ("gpt-oss", "harmony"),
    ("deepseek-v3.1", "deepseek_v31"),
    ("deepseek-v3.2-exp", "deepseek_v31"),
    ("deepseek-v3.2", "deepseek_dsml"),
    ("deepseek-v4", "deepseek_dsml"),
    ("deepseek", "deepseek_v3"),
    ("cogito", "deepseek_v3"),
    ("kimi-k3", "kimi_k3"),
    ("kimi", "kimi_k2"),
    ("step3", "step3"),
    ("step-3", "step3"),
    ("glm-4.5", "glm45"),
    ("glm-4.6", "glm45"),
    ("glm-4.7", "glm47"),
    ("glm-5", "glm47"),
    ("glm", "glm47"),
    ("olmo-3", "olmo3"),
    ("olmo3", "olmo3"),
    ("lfm2", "lfm2"),
    ("lfm-2", "lfm2"),
    ("functiongemma", "functiongemma"),
    ("gemma-4", "gemma4"),
    ("gemma4", "gemma4"),
    ("functionary-v3.1", "functionary_v31"),
    ("functionary-medium-v3.1", "functionary_v31"),
    ("functionary", "functionary_v32"),
];

/// The format a model id suggests (only formats that are registered).
pub fn for_model(model: &str) -> Option<&'static Format> {
    let m = model.to_ascii_lowercase().replace(['_', ' '], "-");
    let stem = m.rsplit('/').next().unwrap_or(&m);
    MODEL_TABLE
        .iter()
        .find(|(pat, _)| stem.contains(pat) || m.contains(pat))
        .and_then(|(_, f)| by_name(f))
}
