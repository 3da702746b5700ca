"""A stand-in for Gemini's generateContent on a loopback port, for scripts that run the real
binaries: it answers every call with exactly the questions asked for (read from the JSON data
part the generator sends last), as a careful model would.

usage: gemini-standin.py PORT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def questions(topic, n, difficulty):
    return [{
        "question": f"Stand-in question {i} about {topic}?",
        "type": "multiple_choice",
        "options": [f"Answer {i}", "Something else", "Neither"],
        "correct_answer": f"Answer {i}",
        "explanation": f"Answer {i} is what the stand-in says about {topic}.",
        "difficulty": difficulty,
    } for i in range(1, n + 1)]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if not self.path.endswith(":generateContent") or not self.headers.get("x-goog-api-key"):
            self.send_response(404)
            self.end_headers()
            return
        data = json.loads(body["contents"][-1]["parts"][-1]["text"])
        text = json.dumps({"questions": questions(data["topic"], data["num_questions"], data["difficulty"])})
        reply = json.dumps({
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 200, "totalTokenCount": 300},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
