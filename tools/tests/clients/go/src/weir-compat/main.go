// Command weir-compat runs the Go client scenarios against a broker: produce,
// consume, a consumer group, the admin API and the codec topics, through each
// Go client library Debian packages that can speak to a Kafka 4 broker
// (sarama and confluent-kafka-go; see run.sh for the one left out).
//
// Built offline in GOPATH mode from Debian's golang-github-*-dev sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode:$PWD/go go build weir-compat
//
// Usage: weir-compat sarama|confluent-kafka-go BOOTSTRAP PREFIX
//
// The codec topics carry the records of compat.py (codec_record), one topic
// per codec named PREFIX-codec-WRITER-CODEC with 4 partitions; cross_read.py
// reads them with another client.
package main

import (
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"os"
	"strings"
	"time"
)

var codecs = []string{"gzip", "snappy", "lz4", "zstd"}

const (
	codecPartitions = 4
	codecRecords    = 200
	timeout         = 30 * time.Second
)

// codecRecord is compat.codec_record.
func codecRecord(writer, codec string, i int) (key, value []byte) {
	key = []byte(fmt.Sprintf("key-%d", i%50))
	value = []byte(fmt.Sprintf("%s/%s/%04d/", writer, codec, i) + strings.Repeat("abc", i%200))
	return
}

func codecTopic(prefix, writer, codec string) string {
	return fmt.Sprintf("%s-codec-%s-%s", prefix, writer, codec)
}

// fnv1aPartition is sarama's documented default (NewHashPartitioner): the
// FNV-1a 32 hash of the key as an int32, modulo the partition count, negated
// when negative.
func fnv1aPartition(key []byte, partitions int32) int32 {
	h := fnv.New32a()
	h.Write(key)
	p := int32(h.Sum32()) % partitions
	if p < 0 {
		p = -p
	}
	return p
}

// crc32Partition is librdkafka's default, consistent_random, for a keyed
// record: CRC32 (IEEE) of the key modulo the partition count.
func crc32Partition(key []byte, partitions int32) int32 {
	return int32(crc32.ChecksumIEEE(key) % uint32(partitions))
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL go "+format+"\n", args...)
	os.Exit(1)
}

func check(ok bool, format string, args ...interface{}) {
	if !ok {
		fail(format, args...)
	}
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: weir-compat sarama|confluent-kafka-go BOOTSTRAP PREFIX")
	}
	switch os.Args[1] {
	case "sarama":
		saramaScenario(os.Args[2], os.Args[3])
	case "confluent-kafka-go":
		confluentScenario(os.Args[2], os.Args[3])
	default:
		fail("unknown client %q", os.Args[1])
	}
}
