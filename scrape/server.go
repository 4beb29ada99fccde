package scrape

import (
	"fmt"
	"strings"
)

// Server names an inference-server family. Its string is the value of the
// `server` key in configuration, of the aiwatt.io/server annotation and of
// the server label that the exporter is expected to put on inference
// counters.
type Server string

// The inference servers this package reads. ServerAuto (the empty string)
// asks for detection from the metric names of each scrape.
const (
	ServerAuto        Server = ""
	ServerVLLM        Server = "vllm"
	ServerTGI         Server = "tgi"
	ServerSGLang      Server = "sglang"
	ServerTriton      Server = "triton"
	ServerTensorRTLLM Server = "tensorrt_llm"
	ServerLlamaCpp    Server = "llamacpp"
	ServerLMDeploy    Server = "lmdeploy"
)

// Servers lists every concrete server, in detection precedence order. It is
// read-only.
var Servers = []Server{
	ServerTensorRTLLM, ServerTriton, ServerVLLM, ServerSGLang, ServerLMDeploy, ServerLlamaCpp, ServerTGI,
}

// serverAliases maps the accepted spellings (lower case) to a Server.
var serverAliases = map[string]Server{
	"":                          ServerAuto,
	"auto":                      ServerAuto,
	"vllm":                      ServerVLLM,
	"tgi":                       ServerTGI,
	"sglang":                    ServerSGLang,
	"triton":                    ServerTriton,
	"tensorrt_llm":              ServerTensorRTLLM,
	"tensorrt-llm":              ServerTensorRTLLM,
	"trtllm":                    ServerTensorRTLLM,
	"llamacpp":                  ServerLlamaCpp,
	"llama.cpp":                 ServerLlamaCpp,
	"llama-cpp":                 ServerLlamaCpp,
	"lmdeploy":                  ServerLMDeploy,
	"text-generation-inference": ServerTGI,
}

// ParseServer turns a configured server name into a Server. It accepts the
// constants' strings case-insensitively, "auto" (same as empty) and a few
// common spellings (trtllm, tensorrt-llm, llama.cpp, text-generation-inference).
func ParseServer(s string) (Server, error) {
	if srv, ok := serverAliases[strings.ToLower(strings.TrimSpace(s))]; ok {
		return srv, nil
	}
	names := make([]string, 0, len(Servers)+1)
	names = append(names, "auto")
	for _, srv := range Servers {
		names = append(names, string(srv))
	}
	return ServerAuto, fmt.Errorf("unknown server %q: want one of %s", s, strings.Join(names, ", "))
}

// String returns the server name, "auto" for ServerAuto.
func (s Server) String() string {
	if s == ServerAuto {
		return "auto"
	}
	return string(s)
}

// DefaultPath is the metrics path the server exposes by default:
// /prometheus/metrics for TensorRT-LLM's trtllm-serve (its /metrics is JSON
// iteration statistics), /metrics for everything else. Triton serves
// /metrics on its own metrics port (8002), see [Server.DefaultPort].
func (s Server) DefaultPath() string {
	if s == ServerTensorRTLLM {
		return "/prometheus/metrics"
	}
	return "/metrics"
}

// DefaultPort is the port the server listens on by default, used when a pod
// is annotated for scraping without aiwatt.io/port; 0 when there is no
// sensible default (auto, or TGI whose container port varies).
func (s Server) DefaultPort() int {
	switch s {
	case ServerVLLM, ServerTensorRTLLM:
		return 8000
	case ServerSGLang:
		return 30000
	case ServerTriton:
		return 8002
	case ServerLlamaCpp:
		return 8080
	case ServerLMDeploy:
		return 23333
	}
	return 0
}
