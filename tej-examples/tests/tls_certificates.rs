//! TLS with the certificates people make: made here, at test time, by the
//! `openssl` command line the way guides show (`openssl req -x509 ...`
//! makes a self-signed certificate marked as a CA and naming no host;
//! `openssl x509 -req` without an extension file makes an X.509 v1 one),
//! then given to `tej serve` and `tej send`. A certificate given with `--ca`
//! that is exactly the server's is trusted as it is (pinned); every refusal
//! is one line that says why in words.
//!
//! Without `openssl` these tests print `SKIP: ...` and pass, unless
//! `TEJ_REQUIRE_OPENSSL=1` or `CI` is set (as `.ci/run` does), where they
//! fail.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tej_test_support::serve::{describe, ServeProcess};

const TIMEOUT: Duration = Duration::from_secs(60);

/// What `openssl` says it made a certificate with, for the asserted remedies.
const REMEDY_NOT_CA: &str = "make it again with `-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:localhost`, or trust exactly this certificate";
const REMEDY_V3: &str = "sign it again with an extension file, e.g. `openssl x509 -req -in CSR -CA CA.pem -CAkey CA.key -days 365 -extfile <(printf 'basicConstraints=critical,CA:FALSE\\nsubjectAltName=DNS:localhost')`";

/// A temporary directory where `openssl` makes certificates.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// `None` (after saying why) when `openssl` is not installed and the
    /// environment does not require it.
    fn new() -> Option<Certs> {
        if let Err(error) = Command::new("openssl").arg("version").output() {
            let required = std::env::var_os("TEJ_REQUIRE_OPENSSL").is_some_and(|v| v == "1")
                || std::env::var_os("CI").is_some();
            assert!(
                !required,
                "openssl is required here (TEJ_REQUIRE_OPENSSL=1 or CI) but cannot run: {error}"
            );
            eprintln!(
                "SKIP: the openssl command cannot run ({error}); install it to run these tests"
            );
            return None;
        }
        Some(Certs {
            dir: tempfile::Builder::new()
                .prefix("tej-tls-certs-")
                .tempdir()
                .unwrap(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            describe(&output)
        );
    }

    /// What most guides show: `openssl req -x509 -newkey ec ... -nodes
    /// -subj /CN=NAME`, a self-signed certificate with CA:TRUE and no
    /// subjectAltName; `NAME.pem` and `NAME.key`.
    fn self_signed(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// A key and certificate request `NAME.key`, `NAME.csr` for `/CN=localhost`.
    fn request(&self, name: &str) {
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
    }

    /// `NAME.pem` signed by `ca` with `openssl x509 -req`: with the
    /// extensions given, X.509 v3; with none, no extension file, v1.
    fn signed(&self, name: &str, ca: &str, days: &str, extensions: Option<&str>) {
        self.request(name);
        let mut args = vec![
            "x509".to_string(),
            "-req".into(),
            "-in".into(),
            format!("{name}.csr"),
            "-CA".into(),
            format!("{ca}.pem"),
            "-CAkey".into(),
            format!("{ca}.key"),
            "-CAcreateserial".into(),
            "-days".into(),
            days.into(),
            "-out".into(),
            format!("{name}.pem"),
        ];
        if let Some(extensions) = extensions {
            std::fs::write(self.path(&format!("{name}.ext")), extensions).unwrap();
            args.extend(["-extfile".into(), format!("{name}.ext")]);
        }
        self.openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

const SERVER_EXTENSIONS: &str =
    "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost\n";

/// The tool under test. What it is run with here never reads stdin: the
/// server's is closed by [`ServeProcess`], `output()` closes the others'.
const TEJ: &str = env!("CARGO_BIN_EXE_tej");

/// A running `tej serve --json` on loopback, its stdout and stderr read
/// line by line.
struct Serve {
    process: ServeProcess,
    port: u16,
}

impl Serve {
    fn start(args: &[OsString]) -> Serve {
        let process = ServeProcess::spawn(
            Command::new(TEJ)
                .args(["serve", "--bind", "127.0.0.1:0", "--json"])
                .args(["--runtime", "mio"])
                .args(args),
        );
        let addr = process.listening(TIMEOUT);
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Serve { process, port }
    }

    fn expect(&mut self, event: &str) -> Value {
        let line = self.process.next_line(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no {event} line from tej serve; stderr: {:?}",
                self.process.stderr()
            )
        });
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], event, "{line}");
        value
    }

    /// The stderr line that starts with `prefix`, waited for.
    fn stderr_line(&self, contains: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let lines = self.process.stderr();
            if let Some(line) = lines.iter().find(|line| line.contains(contains)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line with {contains:?}: {lines:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tej send localhost:PORT --tls ARGS... --message MESSAGE`.
    fn send(&self, message: &str, args: &[OsString]) -> Output {
        Command::new(TEJ)
            .arg("send")
            .arg(format!("localhost:{}", self.port))
            .args([
                "--runtime",
                "tokio",
                "--tls",
                "--timeout",
                "60",
                "--message",
                message,
            ])
            .args(args)
            .output()
            .unwrap()
    }
}

fn os(path: &Path) -> OsString {
    path.as_os_str().to_owned()
}

fn args<const N: usize>(items: [&dyn AsRefOs; N]) -> Vec<OsString> {
    items.iter().map(|item| item.os()).collect()
}

/// Strings and paths alike as arguments.
trait AsRefOs {
    fn os(&self) -> OsString;
}

impl AsRefOs for &str {
    fn os(&self) -> OsString {
        OsString::from(self)
    }
}

impl AsRefOs for PathBuf {
    fn os(&self) -> OsString {
        os(self)
    }
}

/// The one stderr line of a failed `tej send`.
fn one_line_failure(output: &Output) -> String {
    assert!(!output.status.success(), "{}", describe(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", describe(output));
    for dump in ["Other(", "OtherError", "Error {"] {
        assert!(!lines[0].contains(dump), "no Debug dump: {}", lines[0]);
    }
    lines[0].to_string()
}

/// The guide's certificate (CA:TRUE, no subjectAltName) as a server's:
/// `tej serve` warns at start; a client given exactly that certificate with
/// `--ca` trusts it (pinning), one given another CA is told why not.
#[test]
fn a_guide_made_server_certificate_is_pinned_and_warned_about() {
    let Some(certs) = Certs::new() else { return };
    certs.self_signed("server");
    certs.self_signed("stranger");
    let (cert, key) = (certs.path("server.pem"), certs.path("server.key"));
    let mut serve = Serve::start(&args([&"--tls-cert", &cert, &"--tls-key", &key]));
    let warning = serve.stderr_line("warning");
    assert_eq!(
        warning,
        format!(
            "tej serve: warning: {} will be refused by most clients: it is a CA certificate \
             (basicConstraints CA:TRUE); it names no host (no subjectAltName; clients ignore \
             the common name); they can still trust exactly this certificate (tej send --tls \
             --ca {0}); to make one they accept: openssl req -x509 -newkey ec -pkeyopt \
             ec_paramgen_curve:prime256v1 -nodes -days 365 -subj /CN=localhost -addext \
             basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:localhost -keyout \
             key.pem -out cert.pem",
            cert.display()
        )
    );

    let output = serve.send("pinned", &args([&"--ca", &cert]));
    assert!(output.status.success(), "{}", describe(&output));
    serve.expect("connected");
    assert_eq!(serve.expect("received")["message"], "pinned");
    serve.expect("disconnected");

    let output = serve.send("not pinned", &args([&"--ca", &certs.path("stranger.pem")]));
    assert_eq!(
        one_line_failure(&output),
        format!(
            "tej send: cannot connect to 127.0.0.1:{}: TLS handshake with localhost failed: the \
             server's certificate is not trusted: it is a CA certificate (basicConstraints \
             CA:TRUE) used as an end-entity certificate; {REMEDY_NOT_CA}",
            serve.port
        )
    );
}

/// Each way a server's certificate is refused, said in one line: signed by
/// a CA not trusted, for another name, expired, a CA certificate signed by
/// the trusted CA; an X.509 v1 certificate is refused by `tej serve` itself.
#[test]
fn each_server_certificate_problem_is_one_line_in_words() {
    let Some(certs) = Certs::new() else { return };
    certs.self_signed("ca");
    certs.self_signed("stranger");
    let ca = certs.path("ca.pem");
    let failure = |name: &str, extra: &[OsString]| -> (String, String) {
        let serve = Serve::start(&args([
            &"--tls-cert",
            &certs.path(&format!("{name}.pem")),
            &"--tls-key",
            &certs.path(&format!("{name}.key")),
        ]));
        let mut with = args([&"--ca", &ca]);
        with.extend_from_slice(extra);
        let line = one_line_failure(&serve.send("refused", &with));
        (
            line,
            format!(
                "tej send: cannot connect to 127.0.0.1:{}: TLS handshake with {} failed: the \
                 server's certificate is not trusted: ",
                serve.port,
                if extra.is_empty() {
                    "localhost"
                } else {
                    "other.test"
                }
            ),
        )
    };

    certs.signed("good", "ca", "30", Some(SERVER_EXTENSIONS));
    let serve = Serve::start(&args([
        &"--tls-cert",
        &certs.path("good.pem"),
        &"--tls-key",
        &certs.path("good.key"),
    ]));
    let output = serve.send("trusted", &args([&"--ca", &ca]));
    assert!(output.status.success(), "{}", describe(&output));
    let output = serve.send("stranger", &args([&"--ca", &certs.path("stranger.pem")]));
    assert_eq!(
        one_line_failure(&output),
        format!(
            "tej send: cannot connect to 127.0.0.1:{}: TLS handshake with localhost failed: the \
             server's certificate is not trusted: it is not signed by a trusted certificate \
             authority (unknown issuer)",
            serve.port
        )
    );
    drop(serve);

    let (line, prefix) = failure("good", &args([&"--server-name", &"other.test"]));
    assert_eq!(
        line,
        format!("{prefix}it is not valid for the name other.test: it is for localhost")
    );

    certs.signed("expired", "ca", "-1", Some(SERVER_EXTENSIONS));
    let (line, prefix) = failure("expired", &[]);
    assert_eq!(line, format!("{prefix}it has expired"));

    certs.signed(
        "ca-leaf",
        "ca",
        "30",
        Some("basicConstraints=critical,CA:TRUE\nsubjectAltName=DNS:localhost\n"),
    );
    let (line, prefix) = failure("ca-leaf", &[]);
    assert_eq!(
        line,
        format!(
            "{prefix}it is a CA certificate (basicConstraints CA:TRUE) used as an end-entity \
             certificate; {REMEDY_NOT_CA}"
        )
    );

    certs.signed("v1", "ca", "30", None);
    let output = Command::new(TEJ)
        .args(["serve", "--bind", "127.0.0.1:0", "--tls-cert"])
        .arg(certs.path("v1.pem"))
        .arg("--tls-key")
        .arg(certs.path("v1.key"))
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        format!(
            "tej serve: {} is an X.509 v1 certificate (no extensions), which rustls refuses; \
             {REMEDY_V3}",
            certs.path("v1.pem").display()
        )
    );
}

/// Client certificates: one signed with `openssl x509 -req` and no
/// extension file (v1) is refused by `tej send` itself, saying so rather
/// than blaming the key; one from a CA the server does not trust is
/// refused by the server, which logs why and whose alert the client says
/// in words; a guide-made self-signed one given to `--tls-client-ca` is
/// trusted as it is (pinned).
#[test]
fn client_certificates_v1_refused_and_pinned() {
    let Some(certs) = Certs::new() else { return };
    certs.self_signed("server");
    certs.self_signed("clients");
    certs.self_signed("me");
    certs.self_signed("stranger");
    certs.signed("v1", "clients", "30", None);
    certs.signed(
        "outsider",
        "stranger",
        "30",
        Some("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"),
    );
    let bundle = certs.path("trusted.pem");
    let mut trusted = std::fs::read(certs.path("clients.pem")).unwrap();
    trusted.extend(std::fs::read(certs.path("me.pem")).unwrap());
    std::fs::write(&bundle, trusted).unwrap();
    let server = certs.path("server.pem");
    let mut serve = Serve::start(&args([
        &"--tls-cert",
        &server,
        &"--tls-key",
        &certs.path("server.key"),
        &"--tls-client-ca",
        &bundle,
        &"--reply",
        &"known",
    ]));
    let identity = |name: &str| {
        let mut with = args([&"--ca", &server, &"--wait-replies", &"1", &"--cert"]);
        with.extend([
            os(&certs.path(&format!("{name}.pem"))),
            "--key".into(),
            os(&certs.path(&format!("{name}.key"))),
        ]);
        with
    };

    let output = serve.send("v1", &identity("v1"));
    assert_eq!(
        one_line_failure(&output),
        format!(
            "tej send: {} is an X.509 v1 certificate (no extensions), which rustls refuses; \
             {REMEDY_V3}",
            certs.path("v1.pem").display()
        )
    );

    let output = serve.send("pinned", &identity("me"));
    assert!(output.status.success(), "{}", describe(&output));
    serve.expect("connected");
    assert_eq!(serve.expect("received")["message"], "pinned");
    serve.expect("disconnected");

    let output = serve.send("outsider", &identity("outsider"));
    let line = one_line_failure(&output);
    assert!(
        line.starts_with("tej send: ")
            && line.ends_with(
                "the server refused the handshake: our certificate is not signed by a CA it \
                 trusts (unknown issuer)"
            ),
        "{line}"
    );
    let logged = serve.stderr_line("refused a client certificate");
    assert!(
        logged.ends_with(
            " refused a client certificate: it is not signed by a trusted certificate authority \
             (unknown issuer)"
        ),
        "{logged}"
    );
}
