// Command xds-descriptors writes the protobuf descriptors that istiod is
// compiled with (Envoy's API, every Envoy extension istiod knows, Istio's own
// Envoy extension configs such as istio.stats, and the xDS/udpa types) as one
// google.protobuf.FileDescriptorSet, dependencies before dependents. The
// parity suite and `sextant compare` decode xDS with it, so nothing depends on
// Sextant's own encoder. scripts/install-istio.sh builds it against the pinned
// Istio module and runs it once.
package main

import (
	"fmt"
	"os"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	_ "github.com/cncf/xds/go/udpa/type/v1"
	_ "github.com/cncf/xds/go/xds/type/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	_ "istio.io/api/envoy/config/filter/http/alpn/v2alpha1"
	_ "istio.io/api/envoy/config/filter/http/jwt_auth/v2alpha1"
	_ "istio.io/api/envoy/config/filter/network/tcp_cluster_rewrite/v2alpha1"
	_ "istio.io/api/envoy/extensions/stackdriver/config/v1alpha1"
	_ "istio.io/api/envoy/extensions/stats"
	// Every Envoy extension istiod accepts (its EnvoyFilter validation imports them all),
	// contrib ones included (the metadata_exchange config comes from there).
	_ "istio.io/istio/pkg/config/xds"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: xds-descriptors OUT.binpb")
		os.Exit(2)
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	var all []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		all = append(all, fd)
		return true
	})
	// Sorted, so the same build writes the same bytes.
	sort.Slice(all, func(i, j int) bool { return all[i].Path() < all[j].Path() })
	for _, fd := range all {
		add(fd)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %d files (%d bytes) to %s\n", len(set.File), len(b), os.Args[1])
}
