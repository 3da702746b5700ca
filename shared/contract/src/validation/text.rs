//! What a student reads must be plain text: the rules every field of a question obeys, and the
//! normal forms used to compare two texts.

/// How many lines a field may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lines {
    /// Options and `correct_answer`: one line.
    One,
    /// The question and its explanation: line breaks allowed, for a few lines of code.
    Many,
}

/// Markdown the content service never asked for (it shows plain text, so these would reach the
/// student as literal marks). Few and unambiguous on purpose: `# ` and `- ` start a Python
/// comment or an expression as often as a heading or a list, `__x__` is a dunder name, and
/// `a[0](b)` is a call, so none of them is here.
const MARKDOWN: [(&str, &str); 3] = [
    ("`", "a backtick (Markdown code)"),
    ("](http", "a Markdown link"),
    ("](/", "a Markdown link"),
];

/// Why `text` is not a plain, trimmed, non-empty field, if it is not.
pub(super) fn text_problem(text: &str, lines: Lines) -> Option<String> {
    if text.trim().is_empty() {
        return Some("is empty".into());
    }
    if text.trim() != text {
        return Some("has leading or trailing whitespace".into());
    }
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_control() && !(c == '\n' && lines == Lines::Many))
    {
        return Some(match c {
            '\n' => "has a line break".into(),
            c => format!("has the control character U+{:04X}", c as u32),
        });
    }
    if let Some((_, what)) = MARKDOWN.iter().find(|(mark, _)| text.contains(mark)) {
        return Some(format!("has {what}; write plain text"));
    }
    if has_strong_emphasis(text) {
        return Some("has Markdown bold (**text**); write plain text".into());
    }
    None
}

/// `**word…word**`: a pair of `**` with no space just inside either, as CommonMark reads bold.
/// `2 ** 3` (Python's power, spaced) is not.
fn has_strong_emphasis(text: &str) -> bool {
    let mut rest = text;
    while let Some(open) = rest.find("**") {
        let after = &rest[open + 2..];
        let Some(first) = after.chars().next() else {
            return false;
        };
        if !first.is_whitespace()
            && first != '*'
            && let Some(close) = after.find("**")
            && after[..close].chars().last().is_some_and(|c| !c.is_whitespace())
        {
            return true;
        }
        rest = after;
    }
    false
}

/// An option as compared with its siblings: case and runs of whitespace ignored. Punctuation
/// counts here: `x += 1` and `x -= 1` are different answers.
pub(super) fn option_key(option: &str) -> String {
    words(option).join(" ")
}

/// A question as compared with the others of its set: case, runs of whitespace and prose
/// punctuation (`. , ; : ! ?` and quotes) at the edges of words ignored, so "What is a loop?"
/// and "what is a  loop" are the same question. Punctuation between two letters or digits
/// (`3.5`, `obj.attr`) and operators (`+`, `-`, `*`) count: `3 + 2` and `3 - 2` differ.
pub(super) fn question_key(question: &str) -> String {
    let chars: Vec<char> = question.chars().collect();
    let kept: String = chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            let prose = matches!(
                c,
                '.' | ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '“' | '”' | '‘' | '’'
            );
            let inside_word = i > 0
                && chars[i - 1].is_alphanumeric()
                && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
            !prose || inside_word
        })
        .map(|(_, &c)| c)
        .collect();
    words(&kept).join(" ")
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_trimmed_text_passes() {
        for ok in [
            "What does range(3) yield?",
            "What is 2 ** 3?",
            "Which call is valid: funcs[0](x) or funcs(0)[x]?",
            "What does __init__ do?",
        ] {
            assert_eq!(text_problem(ok, Lines::One), None, "{ok}");
        }
        assert_eq!(
            text_problem("What prints?\nfor i in range(2):\n    print(i)", Lines::Many),
            None
        );
    }

    #[test]
    fn each_rule_names_what_is_wrong() {
        let cases = [
            ("", Lines::Many, "is empty"),
            (" \n ", Lines::Many, "is empty"),
            (" padded", Lines::Many, "has leading or trailing whitespace"),
            ("a\nb", Lines::One, "has a line break"),
            ("tab\there", Lines::Many, "has the control character U+0009"),
            ("bell\u{7}", Lines::One, "has the control character U+0007"),
            (
                "Use `range`",
                Lines::One,
                "has a backtick (Markdown code); write plain text",
            ),
            (
                "See [docs](https://x.y)",
                Lines::One,
                "has a Markdown link; write plain text",
            ),
            (
                "See [docs](/loops)",
                Lines::One,
                "has a Markdown link; write plain text",
            ),
            (
                "The **for** loop",
                Lines::One,
                "has Markdown bold (**text**); write plain text",
            ),
        ];
        for (text, lines, problem) in cases {
            assert_eq!(text_problem(text, lines).as_deref(), Some(problem), "{text:?}");
        }
    }

    #[test]
    fn bold_needs_both_ends_against_a_word() {
        assert!(has_strong_emphasis("**bold**"));
        assert!(has_strong_emphasis("x**y**z"));
        assert!(!has_strong_emphasis("2 ** 3 ** 2"));
        assert!(!has_strong_emphasis("a **b ** c"));
        assert!(!has_strong_emphasis("2**3"));
        assert!(!has_strong_emphasis("****"));
    }

    #[test]
    fn questions_compare_without_case_spacing_or_prose_punctuation() {
        assert_eq!(question_key("What is a  Loop?"), question_key("what is a loop"));
        assert_eq!(question_key("\"Loops\", then?"), question_key("loops then"));
        assert_ne!(question_key("What is 3 + 2?"), question_key("What is 3 - 2?"));
        assert_ne!(question_key("int(3.5)?"), question_key("int(35)?"));
        assert_ne!(option_key("x += 1"), option_key("x -= 1"));
        assert_eq!(option_key(" A  b"), option_key("a B"));
    }
}
