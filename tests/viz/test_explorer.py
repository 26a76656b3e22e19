"""`attnlab explore`: the page's weights are the model's own, the page stands alone, bad input is one error.

The browser-side checks (lines drawn, selectors, clicks) are in test_explorer_browser.py.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
from PIL import Image

from attnlab.cli import main
from attnlab.data.augment import normalize
from attnlab.data.images import load_images
from attnlab.data.sentiment import encode_texts
from attnlab.data.tokenizer import MyTokenizer
from attnlab.errors import AttnlabError
from attnlab.models.gpt import generate
from attnlab.viz.explorer import (
    Explorer,
    Limits,
    Request,
    Sampling,
    images_from_test_set,
    pack,
    spread,
    unpack,
    window_starts,
)
from attnlab.viz.explorer_page import render, script_json
from attnlab.viz.explorer_server import HOST, ExplorerApp, ServeOptions, make_server

QUANT_TOL = 0.5 / 65535 + 1e-7  # the page carries round(w * 65535)


def page_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)
    assert match, "no data in the page"
    return json.loads(match.group(1))


def explore(*args: str) -> int:
    return main(["explore", *args])


# ---------------------------------------------------------------------- the weights are the model's
def test_gpt_weights_are_the_models_own(gpt_run):
    ex = Explorer.load(gpt_run)
    data = ex.text("to be or not to be , that is the question")
    tok = MyTokenizer.from_dict(ex.meta["tokenizer"])
    ids = torch.tensor([tok.encode("to be or not to be , that is the question")])  # (1, T)
    model = ex.model
    with torch.no_grad():
        _, reference = model.transformer(model.pos(model.tok(ids)), is_causal=True, need_weights=True)
        logits = model.attend(ids).output
        fused = model(ids)  # the fused kernel's path: the same logits
    torch.testing.assert_close(logits, fused, atol=1e-5, rtol=1e-5)
    shown = unpack(data["attention"])  # (L, H, T, T)
    expected = torch.stack([a[0] for a in reference])
    assert shown.shape == expected.shape == (2, 2, ids.size(1), ids.size(1))
    torch.testing.assert_close(shown, expected, atol=QUANT_TOL, rtol=0)
    assert data["tokens"][0] == "<start>" and data["tokens"][1:4] == ["to", "be", "or"]


def test_causal_rows_sum_to_one_and_future_keys_are_exactly_zero(gpt_run):
    data = Explorer.load(gpt_run).text("to be or not to be")
    w = unpack(data["attention"])  # (L, H, T, T)
    T = w.size(-1)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert torch.equal(w[..., future], torch.zeros_like(w[..., future]))  # masked: exactly 0
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=T * QUANT_TOL, rtol=0)


def test_generation_steps_follow_generate(gpt_run):
    ex = Explorer.load(gpt_run)
    data = ex.generation("to be", 6, Sampling(show_top=3))
    tok = MyTokenizer.from_dict(ex.meta["tokenizer"])
    prefix = tok.encode("to be")
    new = generate(ex.model, prefix, 6)  # greedy, as Sampling() asks
    assert data["tokens"][len(prefix):] == [tok.vocab[i] for i in new]
    g = data["generation"]
    assert g["prompt_length"] == len(prefix) and len(g["steps"]) == 6 and g["how"] == "greedy decoding"
    with torch.no_grad():
        probs = torch.softmax(ex.model(torch.tensor([prefix + new])).float(), -1)[0]  # (T, V)
    for s, step in enumerate(g["steps"]):
        q = len(prefix) - 1 + s
        assert step["query"] == q and step["token"] == tok.vocab[new[s]]
        top = torch.topk(probs[q], 3)
        assert [t for t, _ in step["top"]] == [tok.vocab[int(i)] for i in top.indices]
        assert step["top"][0][0] == step["token"]  # greedy picks the most likely
        assert step["probability"] == pytest.approx(float(probs[q, new[s]]), abs=1e-5)


def test_toy_weights_and_prediction(toy_run):
    ex = Explorer.load(toy_run)
    data = ex.text("3 1 4 1 5 3 3 2")
    tokens = torch.tensor([[3, 1, 4, 1, 5, 3, 3, 2]])
    with torch.no_grad():
        attended = ex.model.attend(tokens)
        logits, reference = attended.output, attended.attentions
    torch.testing.assert_close(logits, ex.model(tokens))  # attend's output is forward's
    torch.testing.assert_close(unpack(data["attention"]), torch.stack([a[0] for a in reference]),
                               atol=QUANT_TOL, rtol=0)
    # received: the last layer's heads averaged, each key column's mean over the 8 queries, by hand
    last = reference[-1][0]  # (H, T, T)
    by_hand = [sum(float(last[h, i, j]) for h in range(last.size(0)) for i in range(8)) / (8 * last.size(0))
               for j in range(8)]
    assert data["prediction"]["received"] == pytest.approx(by_hand, abs=1e-6)
    p = torch.softmax(logits, -1)[0]
    assert data["prediction"]["label"] == f"token value {int(p.argmax()) + 1}"  # a value, not a position
    assert data["prediction"]["probability"] == pytest.approx(float(p.max()), abs=1e-6)


@pytest.mark.parametrize("name", ["transformer", "attention"])
def test_text_classifier_weights_prediction_and_received(text_runs, name):
    ex = Explorer.load(text_runs / name)
    text = "a great film , not boring at all ."
    data = ex.text(text)
    enc, seen = encode_texts([text], ex.meta["vocab"], ex.meta["config"]["model"]["max_len"])
    with torch.no_grad():
        attended = ex.model.attend(enc["ids"], enc["lengths"])
        logits, per_layer = attended.output, attended.attentions
        torch.testing.assert_close(logits, ex.model(enc["ids"], enc["lengths"]))  # attend's output is forward's
    explained = per_layer[-1].mean(1)  # explain's weights: the last layer, heads averaged (B, T, T)
    shown = unpack(data["attention"])
    torch.testing.assert_close(shown, torch.stack([a[0] for a in per_layer]), atol=QUANT_TOL, rtol=0)
    torch.testing.assert_close(shown.sum(-1), torch.ones(shown.shape[:-1]), atol=shown.size(-1) * QUANT_TOL, rtol=0)
    assert data["tokens"] == seen[0]
    p = torch.softmax(logits, -1)[0]
    assert data["prediction"]["label"] == ex.meta["labels"][int(p.argmax())]
    torch.testing.assert_close(torch.tensor(data["prediction"]["received"]), explained[0].mean(0))
    assert ex.num_layers == (2 if name == "transformer" else 1)


def test_vit_weights_labels_rollout(vit_run):
    from attnlab.viz.attention_map import attention_rollout, cls_attention

    run, data_dir = vit_run
    ex = Explorer.load(run)
    found = images_from_test_set(data_dir, [0, 3], 32)
    data = ex.images(found)
    _, test = load_images(data_dir, 32)
    with torch.no_grad():
        attended = ex.model.attend(normalize(test.images[[0, 3]]))
        reference, preds = attended.attentions, attended.output.argmax(-1)
    assert data["grid"] == [4, 4] and len(data["images"]) == 2
    for b, image in enumerate(data["images"]):
        torch.testing.assert_close(unpack(image["attention"]), torch.stack([a[b] for a in reference]),
                                   atol=QUANT_TOL, rtol=0)
        assert image["true"] == ex.meta["classes"][int(test.labels[[0, 3][b]])]
        assert image["pred"] == ex.meta["classes"][int(preds[b])]
        torch.testing.assert_close(torch.tensor(image["rollout"]), attention_rollout(reference)[b])
        torch.testing.assert_close(torch.tensor(image["mean"]), cls_attention(reference)[b])
        assert image["png"].startswith("data:image/png;base64,")


# ---------------------------------------------------------------------- the page
def test_cli_writes_one_self_contained_page(gpt_run, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert explore("--checkpoint", str(gpt_run), "--prompt", "to be", "--generate", "5", "--out", str(out)) == 0
    html = out.read_text(encoding="utf-8")
    assert f"wrote {out}" in capsys.readouterr().err
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing from the network
    assert "<link" not in html and not re.search(r"<script[^>]*\bsrc=", html)
    assert "@import" not in html and "url(http" not in html
    assert html.count("<script") == 2 and len(html.encode()) < 5_000_000
    data = page_data(html)
    assert data["kind"] == "lm" and len(data["generation"]["steps"]) == 5


def test_data_cannot_close_the_script_element():
    text = script_json({"tokens": ["</script><script>alert(1)</script>", "<!--", "&amp;"]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["tokens"][0] == "</script><script>alert(1)</script>"
    page = render({"title": "toy", "tokens": ["</script>"]})
    assert page.count("</script>") == 2  # the data's and the code's own ends


def test_limits_show_a_subset_and_say_which(text_runs, gpt_run):
    assert spread(12, 4) == [0, 4, 7, 11] and spread(3, 5) == [0, 1, 2] and spread(5, 1) == [4]
    ex = Explorer.load(gpt_run, limits=Limits(max_layers=1, max_heads=1, max_tokens=6))
    data = ex.text("to be or not to be , that is the question")
    assert data["layers"] == [1] and data["heads"] == [0] and unpack(data["attention"]).shape[:2] == (1, 1)
    assert any("showing layers 1 of 2" in n for n in data["notes"])
    assert any("showing heads 0 of 2" in n for n in data["notes"])
    assert len(data["tokens"]) == 6 and any("last 6 are kept" in n for n in data["notes"])
    chosen = Explorer.load(gpt_run, limits=Limits(max_layers=1)).text("to be", layer=0)
    assert chosen["layers"] == [0] and chosen["initial"]["layer"] == 0
    long = " ".join(["great"] * 40)
    ex = Explorer.load(text_runs / "transformer", limits=Limits(max_tokens=10))
    data = ex.text(long)
    assert len(data["tokens"]) == 10 and unpack(data["attention"]).shape[-1] == 10
    assert any("the text has 40 tokens; the model reads the first 10" in n for n in data["notes"])


def test_image_file_of_another_size_is_resized_with_a_note(vit_run, tmp_path, capsys):
    run, _ = vit_run
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(tmp_path / "cat" / "red.png")
    out = tmp_path / "vit.html"
    assert explore("--checkpoint", str(run), "--image-file", str(tmp_path / "cat" / "red.png"), "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "red.png is 48x40; resized to the model's 32x32" in err
    image = page_data(out.read_text())["images"][0]
    assert image["true"] == "cat"  # the folder names a CIFAR-10 class
    assert explore("--checkpoint", str(run), "--image-dir", str(tmp_path), "--out", str(out)) == 0
    assert len(page_data(out.read_text())["images"]) == 1


# ---------------------------------------------------------------------- bad input: one line, exit 2
@pytest.mark.parametrize("fixture,args,message", [
    ("lstm_run", ["some text"], "the LSTM language model"),
    ("logreg", ["some text"], "the text 'logreg' model"),
    ("gpt_run", ["   "], "the text is empty"),
    ("gpt_run", [], "nothing to explore"),
    ("gpt_run", ["to be", "--layer", "2"], "--layer 2 is out of range: this model has 2 layers"),
    ("gpt_run", ["to be", "--head", "-1"], "--head must be >= 0 (counted from 0), got -1"),
    ("gpt_run", ["--prompt", "to be", "--generate", "40", "--max-tokens", "10"],
     "--generate 40 leaves no room for the prompt: the page holds at most 10 tokens (--max-tokens)"),
    ("gpt_run", ["--prompt", "to be", "--generate", "1024"], "at most 1,024 tokens (a page's limit)"),
    ("gpt_run", ["x", "--images", "0"], "--images, --image-file and --image-dir are for a ViT"),
    ("toy_run", ["3 1 99"], "the toy model's tokens are 1 to 8"),
    ("toy_run", ["--prompt", "x", "--generate", "3"], "--generate needs a language model"),
    ("transformer", [""], "the text is empty"),
    ("vit", ["--images", "10"], "the test set of"),
    ("vit", ["--image-file", "missing.png"], "does not exist"),
    ("vit", ["a text"], "a ViT explores images"),
    ("vit", ["--images", "0", "--max-layers", "0"], "--max-layers must be >= 1"),
])
def test_bad_input_is_one_error_line(request, text_runs, tmp_path, capsys, fixture, args, message):
    if fixture in ("logreg", "transformer"):
        checkpoint, extra = text_runs / fixture, []
    elif fixture == "vit":
        run, data_dir = request.getfixturevalue("vit_run")
        checkpoint, extra = run, ["--data-dir", str(data_dir)]
    else:
        checkpoint, extra = request.getfixturevalue(fixture), []
    capsys.readouterr()  # what building the fixture printed
    assert explore("--checkpoint", str(checkpoint), *args, *extra, "--out", str(tmp_path / "p.html")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "p.html").exists()


def test_the_explorer_itself_refuses_a_layer_or_head_outside_the_model(gpt_run):
    # the command line refuses a negative index before loading; a Request from Python or the
    # server reaches the explorer's own check, which knows the model's size
    ex = Explorer.load(gpt_run)
    for request, message in ((Request(text="to be", head=-1), "--head -1 is out of range"),
                             (Request(text="to be", layer=2), "--layer 2 is out of range: this model has 2 layers")):
        with pytest.raises(AttnlabError, match=message):
            ex.answer(request)


def test_image_past_pillows_own_limit_is_refused_without_a_traceback(tmp_path):
    """A header claiming 900 megapixels: Pillow raises before the explorer's own size check."""
    import struct
    import zlib

    from attnlab.viz.explorer import read_image

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))
    with pytest.raises(AttnlabError, match=r"^the upload is more than the 16,777,216 pixels accepted; pass a smaller "
                                           r"image$"):
        read_image(bomb, 32)


def test_image_that_is_not_an_image(vit_run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert explore("--checkpoint", str(vit_run[0]), "--image-file", str(bad), "--out", str(tmp_path / "p.html")) == 2
    assert "cannot read" in capsys.readouterr().err


# ---------------------------------------------------------------------- --serve
@pytest.fixture()
def server(toy_run):
    app = ExplorerApp(Explorer.load(toy_run), ServeOptions(max_text_bytes=100, max_upload_bytes=2000))
    httpd = make_server(app, 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def post(httpd, body: bytes, content_type="application/x-www-form-urlencoded", host=None):
    req = urllib.request.Request(f"http://{HOST}:{httpd.server_port}/", data=body, method="POST",
                                 headers={"Content-Type": content_type, **({"Host": host} if host else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_server_listens_on_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"


def test_server_renders_typed_input(server):
    with urllib.request.urlopen(f"http://{HOST}:{server.server_port}/", timeout=30) as r:
        assert r.status == 200 and "<textarea" in r.read().decode()
    status, html = post(server, b"text=3+1+4+1+5+3+3")
    assert status == 200
    assert page_data(html)["tokens"] == ["3", "1", "4", "1", "5", "3", "3"]
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n"
            f"2 2 7\r\n--{boundary}--\r\n").encode()
    status, html = post(server, body, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and page_data(html)["tokens"] == ["2", "2", "7"]


def test_server_refuses_oversized_and_bad_input(server):
    status, html = post(server, b"text=" + b"1+" * 60)  # 125 bytes of text: over max_text_bytes
    assert status == 413 and "input too large" in html and "the limit is 100" in html
    status, html = post(server, b"text=" + b"1" * 3000)  # over max_upload_bytes: refused unread
    assert status == 413 and "the limit is 2,000 bytes" in html
    status, html = post(server, b"text=")
    assert status == 400 and "error: the text is empty" in html
    status, html = post(server, b"text=1", host="evil.example:80")
    assert status == 403 and "127.0.0.1 only" in html


def test_a_refused_upload_still_gets_its_answer_while_the_client_is_sending(server):
    # The server answers 413 as soon as it has read the headers, without reading the body. A
    # client that sends the body after that (a browser uploading a big image does) must still read
    # the answer, not "connection reset": the server reads what still comes before it closes.
    with socket.create_connection((HOST, server.server_port), timeout=10) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 300000\r\n\r\n")
        time.sleep(0.3)  # the answer is sent, and the old server had closed the connection by now
        for _ in range(30):
            conn.sendall(b"text=" + b"1" * 9995)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 413") and b"the limit is 2,000 bytes" in answer


def test_cli_and_server_answer_one_request_the_same(toy_run, tmp_path):
    ex = Explorer.load(toy_run)
    direct = ex.answer(Request(text="3 1 4 1 5", layer=0))
    assert explore("--checkpoint", str(toy_run), "3 1 4 1 5", "--layer", "0", "--out", str(tmp_path / "p.html")) == 0
    assert page_data((tmp_path / "p.html").read_text()) == direct
    status, html = ExplorerApp(ex).page({"text": "3 1 4 1 5"})
    served = page_data(html)
    assert status == 200 and served["attention"] == direct["attention"] and served["tokens"] == direct["tokens"]
    assert direct["initial"]["layer"] == 0 and served["initial"]["layer"] == 1  # the form has no layer: the last


def test_the_form_fits_the_model_and_escapes_what_it_echoes(toy_run, vit_run):
    text_form = ExplorerApp(Explorer.load(toy_run)).form({"text": "</textarea><b>x"}, "bad <input> & more")
    assert '<textarea name="text">&lt;/textarea&gt;&lt;b&gt;x</textarea>' in text_form
    assert re.search(r'<fieldset disabled hidden><label>Image', text_form)  # neither shown nor submitted
    assert 'id="error" >error: bad &lt;input&gt; &amp; more</p>' in text_form
    image_form = ExplorerApp(Explorer.load(vit_run[0]), ServeOptions(data_dir=str(vit_run[1]))).form({})
    assert re.search(r'<fieldset disabled hidden><label>Text', image_form)
    assert re.search(r'<fieldset ><label>Image \(PNG or JPEG\)<br><input type="file"', image_form)
    assert re.search(r'<fieldset ><label>or test images', image_form) and 'id="error" hidden>' in image_form


def answered_quickly(httpd) -> float:
    """Seconds a second client waits for the page (the test fails past 2)."""
    start = time.monotonic()
    with urllib.request.urlopen(f"http://{HOST}:{httpd.server_port}/", timeout=2) as r:
        assert r.status == 200 and "<textarea" in r.read().decode()
    return time.monotonic() - start


@pytest.mark.parametrize("stall", [
    b"",  # a connection that sends nothing
    b"GET / HTTP/1.1\r\n",  # half a request: no blank line
    b"GET /\r\n",  # HTTP/0.9
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n0123456789",  # 10 of 1,000 bytes
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\ntext=1",
])
def test_a_stalled_client_does_not_stall_the_next(server, stall):
    with socket.create_connection((HOST, server.server_port)) as stalled:
        stalled.sendall(stall)
        time.sleep(0.2)  # the server has taken the stalled connection
        assert answered_quickly(server) < 2


def test_content_length_and_header_bounds(server):
    def raw(request: bytes) -> bytes:
        with socket.create_connection((HOST, server.server_port), timeout=5) as c:
            c.sendall(request)
            return c.recv(65536)
    assert raw(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert raw(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/1.0 411")
    assert raw(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999\r\n\r\n").startswith(b"HTTP/1.0 413")
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 500) for i in range(40))
    assert raw(big + b"\r\n").startswith(b"HTTP/1.0 431")


def test_slow_and_vanishing_clients_cost_one_log_line_each(toy_run, capfd):
    app = ExplorerApp(Explorer.load(toy_run), ServeOptions(timeout=0.2))
    httpd = make_server(app, 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with socket.create_connection((HOST, httpd.server_port)) as slow:  # 10 of 1,000 bytes, then silence
            slow.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n0123456789")
            time.sleep(0.5)
        with socket.create_connection((HOST, httpd.server_port)) as gone:  # hangs up mid-body
            gone.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n01234")
        time.sleep(0.2)
        assert answered_quickly(httpd) < 2
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert sum("timed out" in line for line in lines) == 1 and sum("the client hung up" in line for line in lines) == 1


def test_connections_over_the_cap_get_503_at_once(toy_run):
    app = ExplorerApp(Explorer.load(toy_run), ServeOptions(max_connections=2))
    httpd = make_server(app, 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        held = [socket.create_connection((HOST, httpd.server_port)) for _ in range(2)]
        time.sleep(0.2)
        with socket.create_connection((HOST, httpd.server_port), timeout=2) as third:
            assert third.recv(100).startswith(b"HTTP/1.0 503")
        for c in held:
            c.close()
        time.sleep(0.2)
        assert answered_quickly(httpd) < 2  # the slots are given back
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_model_runs_for_one_request_at_a_time(toy_run):
    app = ExplorerApp(Explorer.load(toy_run))
    running, most = [0], [0]
    explore_one = app.explore

    def counted(fields, files):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.05)
        running[0] -= 1
        return explore_one(fields, files)

    app.explore = counted
    threads = [threading.Thread(target=app.page, args=({"text": "1 2 3"},)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


def test_vit_app_takes_an_upload(vit_run):
    import io

    run, data_dir = vit_run
    app = ExplorerApp(Explorer.load(run), ServeOptions(data_dir=str(data_dir)))
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(buf, format="PNG")
    status, html = app.page({"image_name": "green.png"}, {"image": buf.getvalue()})
    assert status == 200 and page_data(html)["images"][0]["name"] == "green.png"
    status, html = app.page({"images": "1 2"}, {})
    assert status == 200 and [i["name"] for i in page_data(html)["images"]] == ["test image 1", "test image 2"]
    status, html = app.page({"images": "x"}, {})
    assert status == 400 and "indices" in html
    status, html = app.page({"image_name": "notes.png"}, {"image": b"not an image"})
    assert status == 400 and "cannot read notes.png as an image" in html and "BytesIO" not in html


def test_pack_round_trip():
    w = torch.softmax(torch.randn(2, 3, 5, 5), -1) * (torch.rand(2, 3, 5, 5) > 0.3)
    back = unpack(pack(w))
    torch.testing.assert_close(back, w, atol=QUANT_TOL, rtol=0)
    assert torch.equal(back[w == 0], torch.zeros(int((w == 0).sum())))


def test_serve_on_a_busy_port_is_one_error_line(toy_run, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        capsys.readouterr()
        assert explore("--checkpoint", str(toy_run), "--serve", str(port)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and "another --serve PORT" in err


def test_each_script_part_defines_its_own_top_level_names():
    """The parts share one function scope: a name defined twice would silently replace the first."""
    from collections import Counter

    from attnlab.viz.explorer_page import _SCRIPT_PARTS, _asset

    names = Counter(m.group(2) for part in _SCRIPT_PARTS
                    for m in re.finditer(r"^(function|const|let|var|class) (\w+)", _asset(part), re.M))
    assert len(names) > 20 and {n for n, c in names.items() if c > 1} == set()


def test_the_page_reads_as_far_as_the_model_as_predict_does(text_runs, toy_run):
    """No --max-tokens: the reader's own limit (the review model's max_len, 32 in the tiny preset), the
    first max_len tokens, which is what `attnlab predict` reads (encode_texts with max_len)."""

    ex = Explorer.load(text_runs / "transformer")
    assert ex.limits.max_tokens is None
    review = " ".join(["great", "boring"] * 30)  # 60 tokens
    data = ex.text(review)
    max_len = ex.meta["config"]["model"]["max_len"]
    enc, _ = encode_texts([review], ex.meta["vocab"], max_len)  # predict's encoding
    assert len(data["tokens"]) == max_len == enc["ids"].shape[1]
    assert any(f"the model's max_len {max_len}" in n for n in data["notes"])
    with torch.no_grad():
        p = torch.softmax(ex.model(enc["ids"], enc["lengths"]).float(), -1)[0]
    assert data["prediction"]["probability"] == pytest.approx(float(p.max()), abs=1e-6)


def test_the_toy_page_states_its_task_and_the_right_answer(toy_run):
    data = Explorer.load(toy_run).text("3 1 4 1 5 3 3")
    assert any("most frequent token value" in n and "right answer for these tokens: token value 3 (3 of 7)" in n
               for n in data["notes"])
    assert all(label.startswith("token value ") for label, _ in data["prediction"]["probabilities"])
    tie = Explorer.load(toy_run).text("2 2 5 5")
    assert any("no single right answer: values 2, 5 tie" in n for n in tie["notes"])


def test_served_errors_speak_in_form_words(gpt_run):
    app = ExplorerApp(Explorer.load(gpt_run))
    status, html = app.page({"text": "to be", "generate": "2000"})
    assert status == 400 and "error: Generate 2000 leaves no room for the prompt" in html
    assert "--generate" not in html.split('id="error"')[1].split("</p>")[0]
    status, html = app.page({"text": "", "generate": "0"})
    assert status == 400 and "type a prompt, or a number of tokens to Generate" in html


def test_compare_holds_both_texts_with_one_selection_and_their_alignment(text_runs, gpt_run, vit_run, tmp_path):
    ex = Explorer.load(text_runs / "transformer")
    a_text, b_text = "a great film , not boring at all .", "a great film , boring"
    data = ex.answer(Request(text=a_text, compare=b_text, layer=0))
    alone_a, alone_b = ex.text(a_text, layer=0), ex.text(b_text, layer=0)
    c = data["compare"]
    assert data["attention"] == alone_a["attention"] and c["attention"] == alone_b["attention"]  # each its own page's
    assert data["layers"] == alone_b["layers"] and data["initial"] == alone_b["initial"]
    assert c["tokens"] == alone_b["tokens"] and c["prediction"] == alone_b["prediction"]
    a, b = unpack(data["attention"]), unpack(c["attention"])
    n = min(a.shape[-1], b.shape[-1])
    assert c["aligned"] == n == 5 and c["common_prefix"] == 4
    assert "position by position over positions 0 to 4" in c["alignment"] and "first 4 tokens" in c["alignment"]
    torch.testing.assert_close(torch.tensor(c["largest"]), (a[..., :n, :n] - b[..., :n, :n]).abs().amax((-2, -1)))
    # the command line and a language model: the same request path
    out = tmp_path / "ab.html"
    assert explore("--checkpoint", str(text_runs / "transformer"), a_text, "--compare", b_text, "--layer", "0",
                   "--out", str(out)) == 0
    assert page_data(out.read_text()) == data
    lm = Explorer.load(gpt_run).answer(Request(text="to be or not", compare="to be", generate=2))
    assert lm["compare"]["generation"] is not None and len(lm["compare"]["tokens"]) == len(lm["tokens"]) - 2
    with pytest.raises(AttnlabError, match="--compare needs a first text"):
        ex.answer(Request(compare="a film"))
    with pytest.raises(AttnlabError, match="a ViT explores images"):
        Explorer.load(vit_run[0]).answer(Request(images=[0], compare="a film"))


def test_the_form_sends_the_text_to_compare_with(toy_run):
    app = ExplorerApp(Explorer.load(toy_run))
    status, html = app.page({"text": "3 1 4", "compare": "3 1 5 5"})
    c = page_data(html)["compare"]
    assert status == 200 and c["tokens"] == ["3", "1", "5", "5"] and c["aligned"] == 3
    assert '<textarea name="compare">3 1 5 5</textarea>' in html
    status, html = app.page({"text": "", "compare": "3 1"})
    assert status == 400 and "Compare with needs a first text" in html and "type a text above it too" in html


def test_generation_past_the_context_slides_a_window_as_generate_does(gpt_run):
    """Past the model's context (32 in the tiny preset) the page is not refused: the tokens are `attnlab
    generate`'s (iter_generate slides its window), each position's row is its own window's attention (by
    hand: attend over that window), zero before the window, and the page says so."""
    assert window_starts(3, 6, 4) == [0, 0, 0, 0, 3, 3] and window_starts(3, 5, 8) == [0] * 5
    ex = Explorer.load(gpt_run)
    context = ex.model.config.context
    data = ex.generation("to be", 40)
    prefix_len = data["generation"]["prompt_length"]
    ids = ex.reader.text("to be", context).inputs[0][0].tolist()
    ids += generate(ex.model, ids, 40)  # greedy, as Sampling() asks
    assert data["tokens"][prefix_len:] == [ex.reader.token(i) for i in ids[prefix_len:]]
    assert len(ids) == len(data["tokens"]) > context
    assert any("more than the model's context of 32: generation slides a window" in n for n in data["notes"])
    shown = unpack(data["attention"])  # (L, H, T, T)
    starts = window_starts(prefix_len, len(ids), context)
    assert len(set(starts)) > 1
    for q in range(len(ids)):
        start = starts[q]
        with torch.no_grad():
            window = ex.model.attend(torch.tensor([ids[start:q + 1]]))
        mine = torch.stack([a[0, :, -1] for a in window.attentions])  # (L, H, window)
        torch.testing.assert_close(shown[:, :, q, start:q + 1], mine, atol=QUANT_TOL, rtol=0)
        assert not shown[:, :, q, :start].any()  # keys before the window: not seen
    for step in data["generation"]["steps"]:
        q = step["query"]
        with torch.no_grad():
            p = torch.softmax(ex.model(torch.tensor([ids[starts[q]:q + 1]]))[0, -1].float(), -1)
        assert step["probability"] == pytest.approx(float(p[ids[q + 1]]), abs=1e-5)


def test_compare_checkpoint_reads_the_text_with_a_second_model(toy_run, gpt_run, tmp_path):
    """--compare-checkpoint: B is the second model's page for the same text (or for --compare), A - B over it."""
    other = tmp_path / "toy-seed1"
    assert main(["train", "toy", "--preset", "tiny", "--set", "model.num_layers=2", "--set", "train.epochs=1",
                 "--set", "train.seed=1", "--out", str(other), "--no-progress"]) == 0
    a, b = Explorer.load(toy_run), Explorer.load(other)
    data = a.answer(Request(text="3 1 4 1 5 3 3"), other=b)
    c = data["compare"]
    assert data["attention"] == a.text("3 1 4 1 5 3 3")["attention"]
    assert c["attention"] == b.text("3 1 4 1 5 3 3")["attention"] and c["attention"] != data["attention"]
    assert c["checkpoint"] == str(other) and c["aligned"] == 7 and c["common_prefix"] == 7
    diff = unpack(data["attention"]) - unpack(c["attention"])
    torch.testing.assert_close(torch.tensor(c["largest"]), diff.abs().amax((-2, -1)))
    assert a.answer(Request(text="3 1", compare="3 3 3"), other=b)["compare"]["tokens"] == ["3", "3", "3"]
    out = tmp_path / "two.html"
    assert explore("--checkpoint", str(toy_run), "3 1 4 1 5 3 3", "--compare-checkpoint", str(other),
                   "--out", str(out)) == 0
    assert page_data(out.read_text()) == data
    with pytest.raises(AttnlabError, match="--compare-checkpoint needs a model of the same kind and shape"):
        a.answer(Request(text="3 1"), other=Explorer.load(gpt_run))
    with pytest.raises(AttnlabError, match="--compare-checkpoint needs a first text"):
        a.answer(Request(), other=b)
