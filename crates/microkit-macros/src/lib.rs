//! `#[protection_domain]`: marks a PD's `init` function, as in rust-sel4's
//! sel4-microkit. The function runs once at start and returns the handler
//! that serves events afterwards.
//!
//! Written without `syn`: the macro only needs the function's name, which
//! is the identifier after `fn`.

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

#[proc_macro_attribute]
pub fn protection_domain(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error("#[protection_domain] takes no arguments");
    }
    let mut tokens = item.clone().into_iter();
    let name = loop {
        match tokens.next() {
            Some(TokenTree::Ident(i)) if i.to_string() == "fn" => match tokens.next() {
                Some(TokenTree::Ident(name)) => break name,
                _ => return error("expected a function name after `fn`"),
            },
            Some(_) => continue,
            None => return error("#[protection_domain] goes on the PD's init function"),
        }
    };
    let entry: TokenStream =
        format!("#[no_mangle] fn __microkit_main() -> ! {{ ::microkit::_private::run_main({name}) }}")
            .parse()
            .expect("the generated entry point parses");
    let mut out = item;
    out.extend(entry);
    out
}

fn error(message: &str) -> TokenStream {
    let span = Span::call_site();
    let group = Group::new(Delimiter::Parenthesis, TokenTree::Literal(Literal::string(message)).into());
    [
        TokenTree::Ident(Ident::new("compile_error", span)),
        TokenTree::Punct(Punct::new('!', Spacing::Alone)),
        TokenTree::Group(group),
        TokenTree::Punct(Punct::new(';', Spacing::Alone)),
    ]
    .into_iter()
    .collect()
}
