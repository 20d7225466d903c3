package main

import (
	"context"
	"fmt"
	"time"

	"github.com/confluentinc/confluent-kafka-go/kafka"
)

// confluent-kafka-go 0.11.6 (Debian's), built against the system librdkafka.

func ckCtx() context.Context {
	ctx, _ := context.WithTimeout(context.Background(), timeout)
	return ctx
}

func ckTopicResults(what string, res []kafka.TopicResult, err error) kafka.ErrorCode {
	must(err, "confluent-kafka-go "+what)
	check(len(res) == 1, "confluent-kafka-go %s: %v", what, res)
	return res[0].Error.Code()
}

func ckDescribe(a *kafka.AdminClient, topic string) map[string]kafka.ConfigEntryResult {
	res, err := a.DescribeConfigs(ckCtx(), []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic}})
	must(err, "confluent-kafka-go DescribeConfigs")
	check(len(res) == 1 && res[0].Error.Code() == kafka.ErrNoError, "confluent-kafka-go DescribeConfigs: %v", res)
	return res[0].Config
}

func ckAllTopics(a *kafka.AdminClient) map[string]kafka.TopicMetadata {
	md, err := a.GetMetadata(nil, true, int(timeout/time.Millisecond))
	must(err, "confluent-kafka-go GetMetadata (all topics)")
	return md.Topics
}

func ckCreate(a *kafka.AdminClient, topic string, partitions int, config map[string]string) kafka.ErrorCode {
	res, err := a.CreateTopics(ckCtx(), []kafka.TopicSpecification{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1, Config: config}})
	return ckTopicResults("CreateTopics", res, err)
}

func confluentAdmin(a *kafka.AdminClient, prefix string) {
	topic := prefix + "-admin"
	wanted := map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.3", "retention.ms": "86400000"}
	check(ckCreate(a, topic, 2, wanted) == kafka.ErrNoError, "confluent-kafka-go CreateTopics with configs failed")
	configs := ckDescribe(a, topic)
	for name, value := range wanted {
		e := configs[name]
		check(e.Value == value && e.Source == kafka.ConfigSourceDynamicTopic, "confluent-kafka-go DescribeConfigs %s: %+v", name, e)
	}
	check(configs["segment.bytes"].Source != kafka.ConfigSourceDynamicTopic && configs["segment.bytes"].Value != "",
		"confluent-kafka-go DescribeConfigs segment.bytes: %+v", configs["segment.bytes"])

	// AlterConfigs replaces the whole set: min.cleanable.dirty.ratio, left out, goes back to its default.
	res, err := a.AlterConfigs(ckCtx(), []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic,
		Config: kafka.StringMapToConfigEntries(map[string]string{"cleanup.policy": "compact", "retention.ms": "3600000"}, kafka.AlterOperationSet)}})
	must(err, "confluent-kafka-go AlterConfigs")
	check(len(res) == 1 && res[0].Error.Code() == kafka.ErrNoError, "confluent-kafka-go AlterConfigs: %v", res)
	configs = ckDescribe(a, topic)
	check(configs["retention.ms"].Value == "3600000", "confluent-kafka-go after AlterConfigs: %+v", configs["retention.ms"])
	ratio := configs["min.cleanable.dirty.ratio"]
	check(ratio.Value == "0.5" && ratio.Source != kafka.ConfigSourceDynamicTopic, "confluent-kafka-go after AlterConfigs without it: %+v", ratio)

	cp := func(n int) kafka.ErrorCode {
		res, err := a.CreatePartitions(ckCtx(), []kafka.PartitionsSpecification{{Topic: topic, IncreaseTo: n}})
		return ckTopicResults("CreatePartitions", res, err)
	}
	check(cp(5) == kafka.ErrNoError, "confluent-kafka-go CreatePartitions failed")
	md, err := a.GetMetadata(&topic, false, int(timeout/time.Millisecond))
	must(err, "confluent-kafka-go GetMetadata")
	check(len(md.Topics[topic].Partitions) == 5, "confluent-kafka-go after CreatePartitions: %d partitions", len(md.Topics[topic].Partitions))
	check(cp(3) == kafka.ErrInvalidPartitions, "confluent-kafka-go CreatePartitions to fewer: want INVALID_PARTITIONS")
	code := ckCreate(a, prefix+"-bad-config", 1, map[string]string{"no.such.config": "1"})
	check(code == kafka.ErrInvalidConfig, "confluent-kafka-go CreateTopics with an unknown config: %v, want INVALID_CONFIG", code)

	dres, err := a.DeleteTopics(ckCtx(), []string{topic})
	check(ckTopicResults("DeleteTopics", dres, err) == kafka.ErrNoError, "confluent-kafka-go DeleteTopics failed")
	deadline := time.Now().Add(timeout)
	for {
		if _, listed := ckAllTopics(a)[topic]; !listed {
			break
		}
		check(time.Now().Before(deadline), "confluent-kafka-go: %s still listed after DeleteTopics", topic)
		time.Sleep(200 * time.Millisecond)
	}
}

// ckProduce produces records and checks each delivery lands on the CRC32 partition.
func ckProduce(conf kafka.ConfigMap, topic string, partitions int32, records [][2][]byte) {
	conf["bootstrap.servers"] = bootstrapAddr
	p, err := kafka.NewProducer(&conf)
	must(err, "confluent-kafka-go NewProducer")
	defer p.Close()
	done := make(chan kafka.Event, len(records))
	for _, r := range records {
		must(p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key: r[0], Value: r[1]}, done), "confluent-kafka-go Produce")
	}
	for range records {
		select {
		case e := <-done:
			m := e.(*kafka.Message)
			must(m.TopicPartition.Error, "confluent-kafka-go delivery to "+topic)
			want := crc32Partition(m.Key, partitions)
			check(m.TopicPartition.Partition == want, "confluent-kafka-go %s: key %s on partition %d, CRC32 says %d", topic, m.Key, m.TopicPartition.Partition, want)
		case <-time.After(timeout):
			fail("confluent-kafka-go: deliveries to %s timed out", topic)
		}
	}
}

var bootstrapAddr string

func confluentRoundtrip(a *kafka.AdminClient, prefix string) {
	topic := prefix + "-roundtrip"
	const partitions, count = 3, 600
	check(ckCreate(a, topic, partitions, nil) == kafka.ErrNoError, "confluent-kafka-go CreateTopics failed")
	var records [][2][]byte
	for i := 0; i < count; i++ {
		records = append(records, [2][]byte{[]byte(fmt.Sprintf("key-%d", i%31)), []byte(fmt.Sprintf("value-%d", i))})
	}
	ckProduce(kafka.ConfigMap{"acks": "all", "linger.ms": 10}, topic, partitions, records)

	group := prefix + "-group"
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrapAddr, "group.id": group,
		"auto.offset.reset": "earliest", "enable.auto.commit": false})
	must(err, "confluent-kafka-go NewConsumer")
	must(c.Subscribe(topic, nil), "confluent-kafka-go Subscribe")
	seen := map[string]bool{}
	deadline := time.Now().Add(timeout)
	for len(seen) < count {
		check(time.Now().Before(deadline), "confluent-kafka-go: the group read %d of %d", len(seen), count)
		m, err := c.ReadMessage(200 * time.Millisecond)
		if err != nil {
			check(err.(kafka.Error).Code() == kafka.ErrTimedOut, "confluent-kafka-go ReadMessage: %v", err)
			continue
		}
		check(!seen[string(m.Value)], "confluent-kafka-go: %s read twice", m.Value)
		seen[string(m.Value)] = true
	}
	_, err = c.Commit()
	must(err, "confluent-kafka-go Commit")
	var tps []kafka.TopicPartition
	for p := int32(0); p < partitions; p++ {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p})
	}
	committed, err := c.Committed(tps, int(timeout/time.Millisecond))
	must(err, "confluent-kafka-go Committed")
	for _, tp := range committed {
		_, high, err := c.QueryWatermarkOffsets(topic, tp.Partition, int(timeout/time.Millisecond))
		must(err, "confluent-kafka-go QueryWatermarkOffsets")
		check(int64(tp.Offset) == high, "confluent-kafka-go: partition %d committed %v, high watermark %d", tp.Partition, tp.Offset, high)
	}
	must(c.Close(), "confluent-kafka-go consumer Close")
}

func confluentCodecs(a *kafka.AdminClient, prefix string) {
	for _, codec := range codecs {
		topic := codecTopic(prefix, "confluent-kafka-go", codec)
		check(ckCreate(a, topic, codecPartitions, nil) == kafka.ErrNoError, "confluent-kafka-go CreateTopics %s failed", topic)
		var records [][2][]byte
		for i := 0; i < codecRecords; i++ {
			key, value := codecRecord("confluent-kafka-go", codec, i)
			records = append(records, [2][]byte{key, value})
		}
		ckProduce(kafka.ConfigMap{"compression.codec": codec, "linger.ms": 10}, topic, codecPartitions, records)
	}
}

func confluentScenario(bootstrap, prefix string) {
	bootstrapAddr = bootstrap
	a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	must(err, "confluent-kafka-go NewAdminClient")
	confluentAdmin(a, prefix)
	confluentRoundtrip(a, prefix)
	confluentCodecs(a, prefix)
	all := ckAllTopics(a)
	_, ok := all[prefix+"-roundtrip"]
	check(ok, "confluent-kafka-go: all-topics metadata lacks %s-roundtrip", prefix)
	a.Close()
	_, lib := kafka.LibraryVersion()
	fmt.Printf("ok confluent-kafka-go 0.11.6 (librdkafka %s): admin (create with configs, describe, alter, create partitions, delete), "+
		"all-topics metadata, produce on CRC32 partitions, a group read and committed, codec topics %v\n", lib, codecs)
}
