//! The attributes accept the documented shapes and refuse misuse with an error at the
//! author's code. The expected messages are in `ui/fail/*.stderr`.

#[test]
fn attributes() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
