// Node-API binding to Google RE2, for checking regexes the way Envoy's
// google_re2 engine does: compile with RE2::Quiet and default options, then
// read RE2::ProgramSize() (Envoy compares it with
// re2.max_program_size.error_level). Exposes two functions:
//   check(pattern: string) -> { error: string } | { programSize: number }
//   search(pattern: string, subject: string) -> { error: string } | { match: boolean }
// (search is unanchored, as Go's Regexp.MatchString, for istiod's own regexes).
// Node-API keeps the ABI stable, so one build serves Node 20, 22 and 24.
#include <node_api.h>

#include <string>

#include "re2/re2.h"

namespace {

napi_value Fail(napi_env env, const char* msg) {
  napi_throw_type_error(env, nullptr, msg);
  return nullptr;
}

bool ReadString(napi_env env, napi_value v, std::string* out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_string) return false;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->assign(len, '\0');
  return napi_get_value_string_utf8(env, v, out->data(), len + 1, &len) == napi_ok;
}

// { error: <RE2's message> } for a pattern that does not compile.
void SetError(napi_env env, napi_value out, const re2::RE2& re) {
  napi_value err;
  napi_create_string_utf8(env, re.error().data(), re.error().size(), &err);
  napi_set_named_property(env, out, "error", err);
}

napi_value Check(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) return Fail(env, "check(pattern) needs a pattern");
  std::string pattern;
  if (!ReadString(env, argv[0], &pattern)) return Fail(env, "pattern must be a string");

  const re2::RE2 re(pattern, re2::RE2::Quiet);
  napi_value out;
  napi_create_object(env, &out);
  if (!re.ok()) {
    SetError(env, out, re);
  } else {
    napi_value size;
    napi_create_int32(env, re.ProgramSize(), &size);
    napi_set_named_property(env, out, "programSize", size);
  }
  return out;
}

napi_value Search(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) return Fail(env, "search(pattern, subject) needs two strings");
  std::string pattern, subject;
  if (!ReadString(env, argv[0], &pattern) || !ReadString(env, argv[1], &subject)) return Fail(env, "pattern and subject must be strings");
  const re2::RE2 re(pattern, re2::RE2::Quiet);
  napi_value out;
  napi_create_object(env, &out);
  if (!re.ok()) {
    SetError(env, out, re);
  } else {
    napi_value m;
    napi_get_boolean(env, re2::RE2::PartialMatch(subject, re), &m);
    napi_set_named_property(env, out, "match", m);
  }
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value search;
  napi_create_function(env, "search", NAPI_AUTO_LENGTH, Search, nullptr, &search);
  napi_set_named_property(env, exports, "search", search);
  napi_value fn;
  napi_create_function(env, "check", NAPI_AUTO_LENGTH, Check, nullptr, &fn);
  napi_set_named_property(env, exports, "check", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
