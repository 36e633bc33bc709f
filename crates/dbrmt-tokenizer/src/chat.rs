//! Chat prompts: the ChatML templates of SmolLM2 (and its plain form), recognised by their exact text and
//! rendered for one user turn with `add_generation_prompt = True`, without a Jinja engine.

use crate::TokenizerError;

/// The loop of a ChatML template, in the spelling SmolLM2's `tokenizer.chat_template` uses.
const CHATML_LOOP: &str = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}";
/// What precedes the loop body.
const FOR_MESSAGES: &str = "{% for message in messages %}";
/// What follows the loop: close it and open the assistant's turn.
const GENERATION_PROMPT: &str = "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
/// Before a default system prompt (SmolLM2: inserted when the first message is not a system one).
const DEFAULT_SYSTEM_OPEN: &str = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n";
/// After a default system prompt.
const DEFAULT_SYSTEM_CLOSE: &str = "<|im_end|>\n' }}{% endif %}";

/// How many characters of an unrecognised template an error quotes.
const EXCERPT_CHARS: usize = 120;

/// A chat template this crate can render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`; with the system
    /// message the template inserts when the conversation has none (SmolLM2: "You are a helpful AI assistant
    /// named SmolLM, trained by Hugging Face").
    ChatMl { default_system: Option<String> },
}

impl ChatTemplate {
    /// Recognises a Jinja chat template by its text. Templates are matched exactly (with `\n` escapes read as
    /// newlines, as Jinja reads them); anything else is refused rather than rendered approximately.
    pub fn recognise(template: &str) -> Result<Self, TokenizerError> {
        let text = template.replace("\\n", "\n");
        let body = text
            .strip_prefix(FOR_MESSAGES)
            .and_then(|t| t.strip_suffix(GENERATION_PROMPT))
            .and_then(|t| t.strip_suffix(CHATML_LOOP));
        let default_system = match body {
            Some("") => Some(None),
            Some(head) => head
                .strip_prefix(DEFAULT_SYSTEM_OPEN)
                .and_then(|t| t.strip_suffix(DEFAULT_SYSTEM_CLOSE))
                .filter(|system| is_plain_literal(system))
                .map(|system| Some(system.to_string())),
            None => None,
        };
        match default_system {
            Some(default_system) => Ok(ChatTemplate::ChatMl { default_system }),
            None => Err(TokenizerError::UnsupportedChatTemplate {
                excerpt: excerpt(template),
            }),
        }
    }

    /// The prompt for one user turn followed by the opening of the assistant's turn.
    pub fn render_user(&self, user: &str) -> String {
        self.render(
            &[ChatMessage {
                role: "user",
                content: user,
            }],
            false,
        )
    }

    /// The prompt for a conversation followed by the opening of the assistant's turn. With `continues`, the
    /// messages go on a conversation whose earlier turns the model has already read (a stored memory state), so
    /// the template's default system prompt, which belongs at the start of a conversation, is not inserted.
    pub fn render(&self, messages: &[ChatMessage<'_>], continues: bool) -> String {
        match self {
            ChatTemplate::ChatMl { default_system } => {
                let mut out = String::new();
                let has_system = messages.first().is_some_and(|m| m.role == "system");
                if let (Some(system), false, false) = (default_system, has_system, continues) {
                    out.push_str(&chatml_turn("system", system));
                }
                for m in messages {
                    out.push_str(&chatml_turn(m.role, m.content));
                }
                out.push_str("<|im_start|>assistant\n");
                out
            }
        }
    }
}

/// One message of a conversation: its role (`system`, `user`, `assistant`) and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

fn chatml_turn(role: &str, content: &str) -> String {
    format!("<|im_start|>{role}\n{content}<|im_end|>\n")
}

/// A Jinja string literal whose text is its value: no quote to end it, no escape, no expression.
fn is_plain_literal(s: &str) -> bool {
    !s.contains(['\'', '"', '\\', '{', '}'])
}

fn excerpt(template: &str) -> String {
    let mut e: String = template.chars().take(EXCERPT_CHARS).collect();
    if e.len() < template.len() {
        e.push('…');
    }
    e.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's `tokenizer.chat_template`, as its GGUF file holds it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_renders_its_default_system_prompt() {
        let t = ChatTemplate::recognise(SMOLLM2).unwrap();
        assert_eq!(
            t.render_user("What is 2+2?"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn conversations_render_every_turn() {
        let t = ChatTemplate::recognise(SMOLLM2).unwrap();
        let turn = |role, content| ChatMessage { role, content };
        let talk = [turn("user", "Hi"), turn("assistant", "Hello!"), turn("user", "Bye")];
        let tail = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n\
                    <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n";
        let rendered = t.render(&talk, false);
        assert!(
            rendered.starts_with("<|im_start|>system\nYou are a helpful AI assistant"),
            "{rendered}"
        );
        assert!(rendered.ends_with(tail), "{rendered}");
        // a conversation's own system prompt replaces the default one; a continued one gets none
        let own = t.render(&[turn("system", "Be brief."), turn("user", "Hi")], false);
        assert_eq!(
            own,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(t.render(&talk, true), tail);
    }

    #[test]
    fn escaped_newlines_read_as_newlines() {
        let escaped = SMOLLM2.replace('\n', "\\n");
        assert_eq!(
            ChatTemplate::recognise(&escaped).unwrap(),
            ChatTemplate::recognise(SMOLLM2).unwrap()
        );
    }

    #[test]
    fn plain_chatml_has_no_system_turn() {
        let plain = format!("{FOR_MESSAGES}{CHATML_LOOP}{GENERATION_PROMPT}");
        let t = ChatTemplate::recognise(&plain).unwrap();
        assert_eq!(t, ChatTemplate::ChatMl { default_system: None });
        assert_eq!(
            t.render_user("hi"),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn other_templates_are_refused() {
        let llama3 = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}";
        let e = ChatTemplate::recognise(llama3).unwrap_err();
        assert!(matches!(e, TokenizerError::UnsupportedChatTemplate { .. }), "{e}");
        assert!(e.to_string().contains("start_header_id"), "{e}");
        // A system prompt built from an expression is not a literal this crate can copy.
        let expr = SMOLLM2.replace("named SmolLM", "named ' + name + '");
        assert!(ChatTemplate::recognise(&expr).is_err());
        // Without the generation prompt the template is another one.
        assert!(ChatTemplate::recognise(SMOLLM2.trim_end_matches("{% endif %}")).is_err());
    }
}
