/* forward.c's pure parts: the owner named by a session id, the URL of a node, and the verdict on
 * a request's peer headers (the loop guard's input). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "forward.h"

static int owner(const char *id) {
        return forward_owner(id, strlen(id));
}

static void test_owner_from_id(void **state) {
        (void)state;
        assert_int_equal(owner("0-0123abcd-00112233445566778899aabbccddeeff"), 0);
        assert_int_equal(owner("2-0123abcd-x"), 2);
        assert_int_equal(owner("65535-0123abcd-x"), 65535);
        assert_int_equal(owner("65536-0123abcd-x"), -EINVAL);
        assert_int_equal(owner("01-0123abcd-x"), -EINVAL); /* no leading zero */
        assert_int_equal(owner("123456-x"), -EINVAL);
        assert_int_equal(owner("-0123abcd-x"), -EINVAL);
        assert_int_equal(owner("7"), -EINVAL); /* no '-' after the node */
        assert_int_equal(owner("7x-abc"), -EINVAL);
        assert_int_equal(owner(""), -EINVAL);
        /* Only len bytes count. */
        assert_int_equal(forward_owner("12-abc", 2), -EINVAL);
        assert_int_equal(forward_owner("12-abc", 3), 12);
}

static void test_url_expansion(void **state) {
        char buf[128];
        (void)state;
        assert_int_equal(forward_url("http://snakebox-{node}.snakebox-hl:8080", 3,
                                 "/api/sessions/3-a/execute", buf, sizeof buf),
                0);
        assert_string_equal(buf, "http://snakebox-3.snakebox-hl:8080/api/sessions/3-a/execute");
        /* Every {node}; a trailing slash of the template is not doubled. */
        assert_int_equal(forward_url("http://n{node}.x/{node}/", 12, "/p", buf, sizeof buf), 0);
        assert_string_equal(buf, "http://n12.x/12/p");
        /* The node in the port, as tests/cluster does. */
        assert_int_equal(
                forward_url("http://127.0.0.1:2345{node}", 2, "/api/sessions/2-x", buf, sizeof buf), 0);
        assert_string_equal(buf, "http://127.0.0.1:23452/api/sessions/2-x");
        /* The decoded path is encoded again: a file name with a space, a '?', a '%', a '#'. */
        assert_int_equal(
                forward_url("http://h{node}", 1, "/api/sessions/1-x/files/a b?c%d#e", buf, sizeof buf), 0);
        assert_string_equal(buf, "http://h1/api/sessions/1-x/files/a%20b%3Fc%25d%23e");
        assert_int_equal(forward_url("http://h/", 1, "/p", buf, sizeof buf), -EINVAL); /* no {node} */
        assert_int_equal(forward_url("http://h{node}", 1, "p", buf, sizeof buf), -EINVAL); /* relative */
        assert_int_equal(forward_url("http://h{node}", 1, "/0123456789", buf, 12), -ENAMETOOLONG);
        assert_int_equal(forward_url("http://h{node}", 1, "/a", buf, 11), -ENAMETOOLONG); /* NUL too */
        assert_int_equal(forward_url("http://h{node}", 1, "/a", buf, 12), 0);
}

static void test_url_template_check(void **state) {
        (void)state;
        assert_true(forward_url_template_ok("http://snakebox-{node}.snakebox-hl:8080"));
        assert_true(forward_url_template_ok("https://n{node}.example"));
        assert_false(forward_url_template_ok("http://snakebox.example")); /* one address for all */
        assert_false(forward_url_template_ok("ftp://{node}"));
        assert_false(forward_url_template_ok("http://a {node}"));
        assert_false(forward_url_template_ok("http://a\n{node}"));
        assert_false(forward_url_template_ok(""));
}

static void test_peer_headers(void **state) {
        static const char token[] = "0123456789abcdef0123";
        (void)state;
        assert_int_equal(forward_inbound(NULL, NULL, token), FORWARD_CLIENT);
        assert_int_equal(forward_inbound(NULL, NULL, ""), FORWARD_CLIENT);
        assert_int_equal(forward_inbound(token, "1", token), FORWARD_PEER);
        /* Either header alone marks a peer request; the token must be right. */
        assert_int_equal(forward_inbound(token, NULL, token), FORWARD_PEER);
        assert_int_equal(forward_inbound(NULL, "1", token), FORWARD_BAD_TOKEN);
        assert_int_equal(forward_inbound("0123456789abcdef012", "1", token), FORWARD_BAD_TOKEN);
        assert_int_equal(forward_inbound("0123456789abcdef01234", "1", token), FORWARD_BAD_TOKEN);
        assert_int_equal(forward_inbound("1123456789abcdef0123", "1", token), FORWARD_BAD_TOKEN);
        assert_int_equal(forward_inbound("", "1", token), FORWARD_BAD_TOKEN);
        /* No PEER_TOKEN here: nothing is a peer, not even an empty token. */
        assert_int_equal(forward_inbound("", "1", ""), FORWARD_BAD_TOKEN);
        assert_int_equal(forward_inbound(token, "1", ""), FORWARD_BAD_TOKEN);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_owner_from_id),
                cmocka_unit_test(test_url_expansion),
                cmocka_unit_test(test_url_template_check),
                cmocka_unit_test(test_peer_headers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
