// Mutual TLS end to end over loopback with the real caseworkd: certificates are made by
// the test (a CA, a server certificate, client certificates). A client without a
// certificate, with a self-signed one, one from another CA, or an expired one is refused
// during the handshake (the call fails UNAVAILABLE and never reaches a handler); a valid
// certificate naming an unknown identity is refused UNAUTHENTICATED IDENTITY_UNKNOWN; a
// valid one acts as the identity in its certificate, whatever the metadata claims.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "clients/client.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/server_process.h"
#include "tests/test_certs.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::CertificateSpec;
using casework::testing::Pem;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using casework::testing::WriteFile;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = casework::testing::SelfSigned({.common_name = "casework test CA", .is_ca = true});
    const Pem server = casework::testing::Issue({.common_name = "caseworkd",
                                                 .dns_names = {"localhost"},
                                                 .ip_names = {"127.0.0.1"},
                                                 .server = true},
                                                ca_);
    WriteFile(Path("ca.pem"), ca_.certificate);
    WriteFile(Path("server.pem"), server.certificate);
    WriteFile(Path("server.key"), server.key);
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    std::filesystem::create_directories(dir_.path() / "data");
    server_ = std::make_unique<ServerProcess>(
        dir_.path() / "data", principals_,
        std::vector<std::string>{"--tls-cert=" + Path("server.pem"),
                                 "--tls-key=" + Path("server.key"),
                                 "--tls-client-ca=" + Path("ca.pem")});
    server_->set_plaintext(false);
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  std::string Path(const std::string& name) { return (dir_.path() / name).string(); }

  // A client presenting `cert` (none when its certificate is empty), trusting `trust`.
  std::unique_ptr<Client> With(const std::string& name, const Pem& cert,
                               const std::string& trust_pem = "",
                               const std::string& claimed_identity = "") {
    WriteFile(Path("trust-" + name + ".pem"), trust_pem.empty() ? ca_.certificate : trust_pem);
    ClientOptions options{.server = server_->address(),
                          .identity = claimed_identity,
                          .tls_ca = Path("trust-" + name + ".pem"),
                          .timeout = std::chrono::milliseconds(5000)};
    if (!cert.certificate.empty()) {
      WriteFile(Path(name + ".pem"), cert.certificate);
      WriteFile(Path(name + ".key"), cert.key);
      options.tls_cert = Path(name + ".pem");
      options.tls_key = Path(name + ".key");
    }
    return std::make_unique<Client>(options);
  }

  grpc::Status Create(Client& c, const std::string& case_id, v1::CaseCommandResponse* resp) {
    v1::CreateCaseRequest req;
    req.set_case_id(case_id);
    req.set_request_id("r-" + case_id);
    auto* org = req.mutable_organisation();
    org->set_organisation_id("org-" + case_id);
    org->set_display_name("东山村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_POOR);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
    req.set_findings("no collective income");
    req.mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
    auto ctx = c.NewContext();
    return c.cases().CreateCase(ctx.get(), req, resp);
  }

  grpc::Status Get(Client& c) {
    v1::GetCaseRequest req;
    req.set_name("cases/none");
    v1::Case resp;
    auto ctx = c.NewContext();
    return c.cases().GetCase(ctx.get(), req, &resp);
  }

  // The metrics text of the running server.
  std::string MetricsText() { return server_->MetricsText(); }

  // The value of a metric line `name` (with its labels) in `text`; -1 when absent.
  static int64_t Metric(const std::string& text, const std::string& name) {
    const size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stoll(text.substr(at + name.size() + 2));
  }

  TempDir dir_;
  Pem ca_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
};

// A server key that is not its certificate's is refused at start as a usage error that
// names both files, not reported later as a port the server cannot listen on.
TEST_F(TlsTest, AKeyThatIsNotTheCertificatesIsRefusedAtStart) {
  const Pem other = casework::testing::Issue({.common_name = "other", .server = true}, ca_);
  WriteFile(Path("other.key"), other.key);
  const Pem expired = casework::testing::Issue({.common_name = "caseworkd",
                                                .ip_names = {"127.0.0.1"},
                                                .server = true,
                                                .not_before_seconds = -2 * 86400,
                                                .not_after_seconds = -86400},
                                               ca_);
  WriteFile(Path("nul.pem"), expired.certificate + std::string(1, '\0'));
  WriteFile(Path("expired.pem"), expired.certificate);
  WriteFile(Path("expired.key"), expired.key);
  WriteFile(Path("garbage.pem"),
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
  struct Case {
    std::string cert, key, ca, says;
  };
  for (const Case& c : std::vector<Case>{
           {Path("server.pem"), Path("other.key"), Path("ca.pem"),
            "is not the key of the certificate"},
           {Path("garbage.pem"), Path("server.key"), Path("ca.pem"),
            "holds no readable certificate"},
           {Path("server.pem"), Path("server.key"), Path("garbage.pem"), "client CA file"},
           {Path("expired.pem"), Path("expired.key"), Path("ca.pem"), "expired on"},
           {Path("server.pem"), Path("server.key"), Path("nul.pem"), "holds a NUL byte"}}) {
    SCOPED_TRACE(c.says);
    const std::string out = Path("start.out");
    const std::string command = std::string(CASEWORKD_PATH) + " --listen 127.0.0.1:0" +
                                " --tls-cert " + c.cert + " --tls-key " + c.key +
                                " --tls-client-ca " + c.ca + " --principals " +
                                principals_.string() + " --data-dir " + Path("other-data") +
                                " --metrics-listen off > " + out + " 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream in(out);
    const std::string said((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 2) << said;
    EXPECT_NE(said.find(c.says), std::string::npos) << said;
  }
}

TEST_F(TlsTest, IdentityComesFromTheCertificateNotTheMetadata) {
  // URI SAN identity; the metadata claims "admin" and is ignored.
  auto lister =
      With("lister",
           casework::testing::Issue(
               {.common_name = "ignored-cn", .uri_names = {"urn:casework:principal:lister"}}, ca_),
           "", "admin");
  v1::CaseCommandResponse created;
  auto ctx = lister->NewContext();
  auto status = Create(*lister, "tls-1", &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(created.events_size(), 1);
  EXPECT_EQ(created.events(0).event().actor(), "lister");
  EXPECT_EQ(created.case_().listed_by(), "lister");

  // CN identity when there is no URI SAN of ours (a DNS SAN is not an identity).
  auto by_cn =
      With("cn", casework::testing::Issue({.common_name = "lister", .dns_names = {"admin"}}, ca_));
  status = Create(*by_cn, "tls-2", &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(created.events(0).event().actor(), "lister");

  // A reviewer may not list: the role check sees the certificate's identity.
  auto reviewer = With(
      "reviewer", casework::testing::Issue({.uri_names = {"urn:casework:principal:reviewer"}}, ca_),
      "", "lister");
  status = Create(*reviewer, "tls-3", &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(casework::client::DecodeError(status).reason, "ACTOR_LACKS_ROLE");
}

// With --tls-identity uri a certificate's common name is no identity: one the client CA
// issued for another use, whose CN happens to be a person's id, is refused, while a
// certificate with the principal URI name is served.
TEST_F(TlsTest, WithUriIdentitiesOnlyACommonNameIsNoIdentity) {
  ASSERT_EQ(server_->Stop(), 0) << server_->error();
  server_ = std::make_unique<ServerProcess>(
      dir_.path() / "data", principals_,
      std::vector<std::string>{"--tls-cert=" + Path("server.pem"),
                               "--tls-key=" + Path("server.key"),
                               "--tls-client-ca=" + Path("ca.pem"), "--tls-identity=uri"});
  server_->set_plaintext(false);
  ASSERT_TRUE(server_->Start()) << server_->error();
  auto by_cn = With("cn", casework::testing::Issue({.common_name = "lister"}, ca_));
  v1::CaseCommandResponse created;
  grpc::Status status = Create(*by_cn, "uri-1", &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_EQ(casework::client::DecodeError(status).reason, "IDENTITY_MISSING");
  EXPECT_NE(status.error_message().find("takes no identity from a common name"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(server_->log().find("identity=lister"), std::string::npos) << server_->log();
  auto by_uri = With(
      "uri", casework::testing::Issue(
                 {.common_name = "admin", .uri_names = {"urn:casework:principal:lister"}}, ca_));
  status = Create(*by_uri, "uri-2", &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(created.events(0).event().actor(), "lister");
}

TEST_F(TlsTest, UnknownOrMissingIdentityIsUnauthenticated) {
  auto stranger = With("stranger", casework::testing::Issue(
                                       {.uri_names = {"urn:casework:principal:stranger"}}, ca_));
  auto status = Get(*stranger);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(casework::client::DecodeError(status).reason, "IDENTITY_UNKNOWN");
  // The identity came from the certificate: no header to point at.
  EXPECT_EQ(casework::client::DecodeError(status).field, "");

  // Two principal URIs: ambiguous, no identity. No CN and no URI: no identity.
  auto two = With("two", casework::testing::Issue({.common_name = "lister",
                                                   .uri_names = {"urn:casework:principal:lister",
                                                                 "urn:casework:principal:admin"}},
                                                  ca_));
  status = Get(*two);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(casework::client::DecodeError(status).reason, "IDENTITY_MISSING");
  auto none = With("none", casework::testing::Issue({.dns_names = {"lister"}}, ca_));
  status = Get(*none);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(casework::client::DecodeError(status).reason, "IDENTITY_MISSING");
  // A certificate naming nobody at all, with a header naming someone: refused, and the
  // server's log of the refusal does not name the header's identity (under TLS the log
  // says who the certificate is, here nobody).
  auto nameless = With("nameless", casework::testing::Issue({}, ca_), "", "wang.fang");
  status = Get(*nameless);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(casework::client::DecodeError(status).reason, "IDENTITY_MISSING");
  const std::string log = server_->log();
  EXPECT_NE(log.find("refused method="), std::string::npos) << log;
  EXPECT_EQ(log.find("identity=wang.fang"), std::string::npos) << log;
}

TEST_F(TlsTest, BadCertificatesAreRefusedAtTheHandshake) {
  const CertificateSpec lister{.uri_names = {"urn:casework:principal:lister"}};
  const Pem other_ca = casework::testing::SelfSigned({.common_name = "another CA", .is_ca = true});
  struct Row {
    const char* name;
    Pem cert;
    std::string trust;
  };
  CertificateSpec expired = lister;
  expired.not_before_seconds = -2 * 86400;
  expired.not_after_seconds = -86400;
  CertificateSpec not_yet = lister;
  not_yet.not_before_seconds = 86400;
  not_yet.not_after_seconds = 2 * 86400;
  const Row rows[] = {
      {"no-certificate", Pem{}, ""},
      {"self-signed", casework::testing::SelfSigned(lister), ""},
      {"other-ca", casework::testing::Issue(lister, other_ca), ""},
      {"expired", casework::testing::Issue(expired, ca_), ""},
      {"not-yet-valid", casework::testing::Issue(not_yet, ca_), ""},
      // The client does not trust the server's CA.
      {"server-untrusted", casework::testing::Issue(lister, ca_), other_ca.certificate},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    auto c = With(row.name, row.cert, row.trust);
    const auto status = Get(*c);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }
  // A plaintext client gets no answer either.
  Client plaintext(ClientOptions{.server = server_->address(),
                                 .identity = "lister",
                                 .timeout = std::chrono::milliseconds(5000)});
  EXPECT_EQ(Get(plaintext).error_code(), grpc::StatusCode::UNAVAILABLE);
  // None of them reached a handler: the server logged no refusal.
  EXPECT_EQ(server_->log().find("refused method="), std::string::npos) << server_->log();
}

// SIGHUP reads the three files again. A set that fails a check is refused whole and the
// one in use stays; a good one applies from the next connection on, while a connection
// opened before it keeps working with the set it was opened with.
TEST_F(TlsTest, SighupReloadsTheCertificatesForNewConnections) {
  const CertificateSpec lister{.uri_names = {"urn:casework:principal:lister"}};
  const Pem client = casework::testing::Issue(lister, ca_);
  auto before = With("before", client);
  ASSERT_EQ(Get(*before).error_code(), grpc::StatusCode::NOT_FOUND);  // reached a handler
  // The certificate's end of validity is a metric (issued for a day).
  const std::string expiry = "casework_tls_certificate_expiry_timestamp_seconds";
  std::string metrics = MetricsText();
  EXPECT_NEAR(static_cast<double>(Metric(metrics, expiry)), NowSeconds() + 86400.0, 120) << metrics;
  EXPECT_EQ(Metric(metrics, "casework_tls_reloads_total{outcome=\"refused\"}"), 0) << metrics;

  auto count = [&](const std::string& text) {
    const std::string log = server_->log();
    int n = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
  };
  auto hangup_until = [&](const std::string& text, int times) {
    if (kill(server_->pid(), SIGHUP) != 0) return false;
    for (int i = 0; i < 200 && count(text) < times; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return count(text) == times;
  };

  // The next set: the server's certificate and the client certificates from a new CA.
  const Pem ca2 =
      casework::testing::SelfSigned({.common_name = "casework test CA 2", .is_ca = true});
  const CertificateSpec server{.common_name = "caseworkd",
                               .dns_names = {"localhost"},
                               .ip_names = {"127.0.0.1"},
                               .server = true};
  CertificateSpec server_for_a_year = server;
  server_for_a_year.not_after_seconds = 365 * 86400;
  const Pem server2 = casework::testing::Issue(server_for_a_year, ca2);
  const Pem client2 = casework::testing::Issue(lister, ca2);
  CertificateSpec expired_spec = server;
  expired_spec.not_before_seconds = -2 * 86400;
  expired_spec.not_after_seconds = -86400;
  const Pem expired = casework::testing::Issue(expired_spec, ca2);

  // Refused whole, the old set kept: a key that is not the certificate's; an expired
  // certificate; an unreadable client CA file.
  const char* kept = "mutual TLS not reloaded, keeping the certificates in use";
  WriteFile(Path("server.pem"), server2.certificate);
  WriteFile(Path("server.key"), client2.key);
  ASSERT_TRUE(hangup_until(kept, 1)) << server_->log();
  EXPECT_EQ(count("is not the key of the certificate"), 1) << server_->log();
  WriteFile(Path("server.pem"), expired.certificate);
  WriteFile(Path("server.key"), expired.key);
  ASSERT_TRUE(hangup_until(kept, 2)) << server_->log();
  EXPECT_EQ(count("expired on"), 1) << server_->log();
  WriteFile(Path("server.pem"), server2.certificate);
  WriteFile(Path("server.key"), server2.key);
  std::filesystem::remove(Path("ca.pem"));
  ASSERT_TRUE(hangup_until(kept, 3)) << server_->log();
  EXPECT_EQ(count("reloaded mutual TLS"), 0) << server_->log();
  auto still_old = With("still-old", client);
  EXPECT_EQ(Get(*still_old).error_code(), grpc::StatusCode::NOT_FOUND);
  auto not_yet_new = With("not-yet-new", client2, ca2.certificate);
  EXPECT_EQ(Get(*not_yet_new).error_code(), grpc::StatusCode::UNAVAILABLE);

  // A good set: new connections use it at once.
  WriteFile(Path("ca.pem"), ca2.certificate);
  ASSERT_TRUE(hangup_until("reloaded mutual TLS for new connections", 1)) << server_->log();
  EXPECT_EQ(count("client certificates issued by CN=casework test CA 2"), 1) << server_->log();
  auto renewed = With("renewed", client2, ca2.certificate);
  EXPECT_EQ(Get(*renewed).error_code(), grpc::StatusCode::NOT_FOUND);
  // The old server certificate is gone (a client that trusts only the old CA stops), and
  // so is the old client CA (a client certificate it issued is refused).
  auto old_trust = With("old-trust", client);
  EXPECT_EQ(Get(*old_trust).error_code(), grpc::StatusCode::UNAVAILABLE);
  auto old_client = With("old-client", client, ca2.certificate);
  EXPECT_EQ(Get(*old_client).error_code(), grpc::StatusCode::UNAVAILABLE);
  // The connection opened before the reload is still served.
  EXPECT_EQ(Get(*before).error_code(), grpc::StatusCode::NOT_FOUND);
  metrics = MetricsText();
  EXPECT_NEAR(static_cast<double>(Metric(metrics, expiry)), NowSeconds() + 365 * 86400.0, 120)
      << metrics;
  EXPECT_EQ(Metric(metrics, "casework_tls_reloads_total{outcome=\"refused\"}"), 3) << metrics;
  EXPECT_EQ(Metric(metrics, "casework_tls_reloads_total{outcome=\"applied\"}"), 1) << metrics;
}

TEST(TlsFlags, TheServerRefusesToStartWithoutAnExplicitTransport) {
  TempDir dir;
  const auto principals = casework::testing::WriteTestPrincipals(dir.path());
  std::filesystem::create_directories(dir.path() / "data");
  {
    ServerProcess neither(dir.path() / "data", principals);
    neither.set_plaintext(false);
    EXPECT_FALSE(neither.Start());
    EXPECT_NE(neither.error().find("refusing to start"), std::string::npos) << neither.error();
  }
  {
    const Pem ca = casework::testing::SelfSigned({.common_name = "ca", .is_ca = true});
    WriteFile((dir.path() / "ca.pem").string(), ca.certificate);
    ServerProcess both(dir.path() / "data", principals,
                       {"--tls-cert=" + (dir.path() / "ca.pem").string(),
                        "--tls-key=" + (dir.path() / "ca.pem").string(),
                        "--tls-client-ca=" + (dir.path() / "ca.pem").string()});
    EXPECT_FALSE(both.Start());
    EXPECT_NE(both.error().find("either --insecure-plaintext or the --tls-* flags"),
              std::string::npos)
        << both.error();
  }
  {  // Plaintext on every address: anyone reaching it could name any identity.
    ServerProcess open(dir.path() / "data", principals, {"--listen=0.0.0.0:0"});
    EXPECT_FALSE(open.Start());
    EXPECT_NE(open.error().find("serves only a loopback address"), std::string::npos)
        << open.error();
  }
}

// Connections that open TCP and never start the TLS handshake are closed by the server
// after the handshake timeout (10 s), while a real client is served meanwhile.
TEST_F(TlsTest, StalledHandshakesAreClosedAndOthersAreServed) {
  constexpr int kStalled = 500;
  const int port = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  std::vector<int> sockets;
  for (int i = 0; i < kStalled; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    sockets.push_back(fd);
  }
  // Served while the stalled ones wait.
  auto lister = With(
      "lister", casework::testing::Issue({.uri_names = {"urn:casework:principal:lister"}}, ca_));
  v1::CaseCommandResponse created;
  auto status = Create(*lister, "tls-stall", &created);
  EXPECT_TRUE(status.ok()) << status.error_message();

  // Every stalled connection is closed by the server (EOF or reset), within a bound.
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(40);
  int closed = 0;
  std::vector<pollfd> open;
  for (int fd : sockets) open.push_back({.fd = fd, .events = POLLIN, .revents = 0});
  while (!open.empty() && std::chrono::steady_clock::now() < deadline) {
    if (poll(open.data(), open.size(), 1000) <= 0) continue;
    std::vector<pollfd> still;
    for (const pollfd& p : open) {
      char byte = 0;
      if (p.revents != 0 && recv(p.fd, &byte, 1, MSG_DONTWAIT) <= 0) {
        ++closed;
        close(p.fd);
      } else {
        still.push_back({.fd = p.fd, .events = POLLIN, .revents = 0});
      }
    }
    open = std::move(still);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const pollfd& p : open) close(p.fd);
  EXPECT_EQ(closed, kStalled) << "after " << seconds << " s";
  std::printf("%d stalled handshakes closed by the server within %.1f s\n", closed, seconds);
}

}  // namespace
}  // namespace casework
